// Buildings in their best LoD as triangles: the roof and wall surfaces `GET /buildings/lod2.json`
// serves (rings of [lon, lat, h], h in metres above each building's ground) turned into one vertex
// buffer for the WebGL layer in lod2Layer.js. Pure functions (no DOM, no WebGL), tested in Node.
//
// Positions are metres east and north of an origin in Web Mercator: mercator offsets divided by the
// origin's metres-per-mercator-unit, which the layer multiplies back, so the drawn positions are the
// exact mercator coordinates MapLibre uses and float32 keeps centimetres across a whole city.

import earcut from 'earcut';

/** Floats per vertex: east, north, height above ground (m), base elevation (m), normal (x, y, z), roof (1) or not (0). */
export const FLOATS_PER_VERTEX = 8;

/** Web Mercator x (0 … 1, west to east) of a longitude, as MapLibre's MercatorCoordinate computes it. */
export function mercatorX(lon) {
  return (180 + lon) / 360;
}

/** Web Mercator y (0 … 1, north to south) of a latitude, as MapLibre's MercatorCoordinate computes it. */
export function mercatorY(lat) {
  return (180 - (180 / Math.PI) * Math.log(Math.tan(Math.PI / 4 + (lat * Math.PI) / 360))) / 360;
}

/** The Newell normal of a ring of [x, y, z] points (not closed), unit length; null when degenerate. */
export function newellNormal(points) {
  let nx = 0;
  let ny = 0;
  let nz = 0;
  for (let i = 0; i < points.length; i += 1) {
    const [x1, y1, z1] = points[i];
    const [x2, y2, z2] = points[(i + 1) % points.length];
    nx += (y1 - y2) * (z1 + z2);
    ny += (z1 - z2) * (x1 + x2);
    nz += (x1 - x2) * (y1 + y2);
  }
  const length = Math.hypot(nx, ny, nz);
  return length > 1e-12 ? [nx / length, ny / length, nz / length] : null;
}

/** A closed or open ring without its repeated closing point. */
function openRing(ring) {
  const [first, last] = [ring[0], ring[ring.length - 1]];
  const closed = ring.length > 1 && first.every((value, i) => value === last[i]);
  return closed ? ring.slice(0, -1) : ring;
}

/**
 * Triangles of one planar polygon in 3D (rings of [x, y, z], outer first, holes after): earcut on
 * the plane the polygon projects onto with least distortion (the axis of its normal's largest
 * component dropped). Returns { normal, triangles: [[p, q, r], ...] } or null when degenerate.
 */
export function triangulate(rings) {
  const open = rings.map(openRing).filter((ring) => ring.length >= 3);
  if (!open.length) return null;
  const normal = newellNormal(open[0]);
  if (!normal) return null;
  const drop = normal.map(Math.abs).indexOf(Math.max(...normal.map(Math.abs)));
  const keep = [0, 1, 2].filter((axis) => axis !== drop);
  const points = open.flat();
  const flat = points.flatMap((p) => [p[keep[0]], p[keep[1]]]);
  const holes = [];
  let count = open[0].length;
  for (const ring of open.slice(1)) {
    holes.push(count);
    count += ring.length;
  }
  const indices = earcut(flat, holes, 2);
  const triangles = [];
  for (let i = 0; i < indices.length; i += 3) triangles.push([points[indices[i]], points[indices[i + 1]], points[indices[i + 2]]]);
  return { normal, triangles };
}

/**
 * The vertex buffer of every building's surfaces. `origin` is [lon, lat] and `meterUnits` the
 * mercator units per metre there (MercatorCoordinate.meterInMercatorCoordinateUnits()).
 * Returns { vertices: Float32Array, triangles, buildings, ids } (ids: the drawn buildings' ids).
 */
export function buildMesh(payload, origin, meterUnits) {
  const ox = mercatorX(origin[0]);
  const oy = mercatorY(origin[1]);
  const toLocal = ([lon, lat, h]) => [(mercatorX(lon) - ox) / meterUnits, -(mercatorY(lat) - oy) / meterUnits, h];
  const out = [];
  const ids = [];
  let drawn = 0;
  for (const building of payload.buildings || []) {
    const base = Number.isFinite(building.base_m) ? building.base_m : 0;
    let triangles = 0;
    for (const surface of building.surfaces) {
      const mesh = triangulate(surface.rings.map((ring) => ring.map(toLocal)));
      if (!mesh) continue;
      const roof = surface.type === 'roof' ? 1 : 0;
      for (const triangle of mesh.triangles) {
        for (const [east, north, h] of triangle) out.push(east, north, h, base, ...mesh.normal, roof);
      }
      triangles += mesh.triangles.length;
    }
    if (triangles) {
      drawn += 1;
      if (building.id !== null && building.id !== undefined) ids.push(String(building.id));
    }
  }
  return { vertices: new Float32Array(out), triangles: out.length / FLOATS_PER_VERTEX / 3, buildings: drawn, ids };
}

/** The centre of the payload's vertices' extent, [lon, lat] (null without any). */
export function payloadOrigin(payload) {
  let [west, south, east, north] = [Infinity, Infinity, -Infinity, -Infinity];
  for (const building of payload.buildings || []) {
    for (const surface of building.surfaces) {
      for (const ring of surface.rings) {
        for (const [lon, lat] of ring) {
          west = Math.min(west, lon);
          east = Math.max(east, lon);
          south = Math.min(south, lat);
          north = Math.max(north, lat);
        }
      }
    }
  }
  return Number.isFinite(west) ? [(west + east) / 2, (south + north) / 2] : null;
}

/**
 * The model-view-projection matrix for the layer: MapLibre's (column-major, mercator world) times a
 * translation to the origin, computed in doubles before the shader gets it as float32.
 */
export function originMatrix(matrix, originX, originY) {
  const out = Array.from(matrix);
  for (let row = 0; row < 4; row += 1) {
    out[12 + row] = matrix[row] * originX + matrix[4 + row] * originY + matrix[12 + row];
  }
  return out;
}

/**
 * The LoD1 extrusion's height expression with the LoD2 buildings flattened to 0 m: their footprint
 * stays clickable under the LoD2 surfaces drawn in its place.
 */
export function heightWithoutLod2(height, ids) {
  if (!ids.length) return height;
  return ['match', ['to-string', ['get', 'building_id']], [...new Set(ids)], 0, height];
}
