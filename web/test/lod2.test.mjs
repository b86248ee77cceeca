// Tests of the LoD2 mesh (lod2Mesh.js): a gabled house whose triangles, normals and positions are
// computed by hand. The house (as in tests/unit/city3d): a 10 × 8 m footprint, eaves at 6 m, a ridge
// at 9 m running east–west along y = 4 m; two roofs of 10 × 5 m sloping 3 m over 4 m.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FLOATS_PER_VERTEX, buildMesh, heightWithoutLod2, mercatorX, mercatorY, newellNormal, originMatrix, payloadOrigin, triangulate } from '../src/lod2Mesh.js';

const P = [
  [0, 0, 0], [10, 0, 0], [10, 8, 0], [0, 8, 0],
  [0, 0, 6], [10, 0, 6], [10, 8, 6], [0, 8, 6],
  [0, 4, 9], [10, 4, 9],
];
const ring = (...indices) => [...indices, indices[0]].map((i) => P[i]); // closed, as the server sends them
const HOUSE = [
  ['wall', ring(0, 1, 5, 4)], ['wall', ring(1, 2, 6, 9, 5)], ['wall', ring(2, 3, 7, 6)], ['wall', ring(3, 0, 4, 8, 7)],
  ['roof', ring(4, 5, 9, 8)], ['roof', ring(6, 7, 8, 9)],
];

const close = (actual, expected, tolerance = 1e-9) =>
  assert.ok(actual.every((v, i) => Math.abs(v - expected[i]) <= tolerance), `${actual} ≠ ${expected}`);

test('Newell normals of the walls face out and of the roofs tilt atan(3/4) towards south and north', () => {
  close(newellNormal(ring(0, 1, 5, 4).slice(0, -1)), [0, -1, 0]); // the south wall
  close(newellNormal(ring(1, 2, 6, 9, 5).slice(0, -1)), [1, 0, 0]); // the east gable
  close(newellNormal(ring(4, 5, 9, 8).slice(0, -1)), [0, -0.6, 0.8]); // south roof: (0, -3, 4) / 5
  close(newellNormal(ring(6, 7, 8, 9).slice(0, -1)), [0, 0.6, 0.8]);
  assert.equal(newellNormal([[0, 0, 0], [1, 1, 1], [2, 2, 2]]), null); // collinear: no plane
});

test('a polygon of n corners gives n − 2 triangles with its area; a hole is cut out', () => {
  const area = (triangles) =>
    triangles.reduce((sum, [a, b, c]) => {
      const u = b.map((v, i) => v - a[i]);
      const w = c.map((v, i) => v - a[i]);
      return sum + Math.hypot(u[1] * w[2] - u[2] * w[1], u[2] * w[0] - u[0] * w[2], u[0] * w[1] - u[1] * w[0]) / 2;
    }, 0);
  const gable = triangulate([ring(1, 2, 6, 9, 5)]);
  assert.equal(gable.triangles.length, 3);
  assert.ok(Math.abs(area(gable.triangles) - 60) < 1e-9); // 8 × 6 + ½ × 8 × 3
  const roof = triangulate([ring(4, 5, 9, 8)]);
  assert.equal(roof.triangles.length, 2);
  assert.ok(Math.abs(area(roof.triangles) - 50) < 1e-9); // 10 × 5
  const square = [[0, 0, 0], [4, 0, 0], [4, 4, 0], [0, 4, 0], [0, 0, 0]];
  const hole = [[1, 1, 0], [1, 3, 0], [3, 3, 0], [3, 1, 0], [1, 1, 0]];
  const holed = triangulate([square, hole]);
  assert.equal(holed.triangles.length, 8); // 4 + 4 corners, one hole: 4 + 4 + 2·1 − 2
  assert.ok(Math.abs(area(holed.triangles) - 12) < 1e-9); // 16 − 4
  assert.equal(triangulate([[[0, 0, 0], [1, 0, 0], [0, 0, 0]]]), null);
});

/** The house placed at a real origin: vertices as [lon, lat, h], through the inverse of the mesh's own projection. */
function housePayload(origin, meterUnits, extra = {}) {
  const ox = mercatorX(origin[0]);
  const oy = mercatorY(origin[1]);
  const toLonLat = ([east, north, h]) => {
    const x = ox + east * meterUnits;
    const y = oy - north * meterUnits;
    const lat = (360 / Math.PI) * Math.atan(Math.exp(((180 - y * 360) * Math.PI) / 180)) - 90;
    return [x * 360 - 180, lat, h];
  };
  return {
    id: 'house0',
    base_m: 125,
    surfaces: HOUSE.map(([type, points]) => ({ type, rings: [points.map(toLonLat)] })),
    ...extra,
  };
}

test('the mesh of the house: 14 triangles, positions back in metres, base and roof flags per vertex', () => {
  const origin = [9, 48.75];
  const meterUnits = 1 / (2 * Math.PI * 6371008.8 * Math.cos((48.75 * Math.PI) / 180));
  const mesh = buildMesh({ buildings: [housePayload(origin, meterUnits)] }, origin, meterUnits);
  assert.equal(mesh.triangles, 2 * 3 + 2 * 2 + 2 * 2); // two pentagon gables, two quad walls, two quad roofs
  assert.equal(mesh.buildings, 1);
  assert.deepEqual(mesh.ids, ['house0']);
  assert.equal(mesh.vertices.length, 14 * 3 * FLOATS_PER_VERTEX);
  const vertices = [];
  for (let i = 0; i < mesh.vertices.length; i += FLOATS_PER_VERTEX) vertices.push(Array.from(mesh.vertices.slice(i, i + FLOATS_PER_VERTEX)));
  for (const [east, north, h, base] of vertices) {
    const corner = P.find((p) => Math.abs(p[0] - east) < 0.01 && Math.abs(p[1] - north) < 0.01 && p[2] === h);
    assert.ok(corner, `vertex (${east}, ${north}, ${h}) is not a corner of the house`);
    assert.equal(base, 125);
  }
  const roofVertices = vertices.filter((v) => v[7] === 1);
  assert.equal(roofVertices.length, 4 * 3); // 2 roofs × 2 triangles × 3 vertices
  assert.ok(roofVertices.every((v) => Math.abs(Math.abs(v[5]) - 0.6) < 1e-6 && Math.abs(v[6] - 0.8) < 1e-6));
  assert.ok(vertices.filter((v) => v[7] === 0).every((v) => Math.abs(v[6]) < 1e-6)); // walls are vertical
});

test('a building without a base stands at 0; one without drawable surfaces is not counted', () => {
  const origin = [9, 48.75];
  const meterUnits = 1e-7;
  const flat = { id: 'b2', base_m: null, surfaces: [{ type: 'wall', rings: [[[9, 48.75, 0], [9, 48.75, 1], [9, 48.75, 0]]] }] };
  const mesh = buildMesh({ buildings: [housePayload(origin, meterUnits, { base_m: null }), flat] }, origin, meterUnits);
  assert.equal(mesh.buildings, 1);
  assert.deepEqual(mesh.ids, ['house0']);
  assert.equal(mesh.vertices[3], 0);
  assert.equal(buildMesh({ buildings: [] }, origin, meterUnits).triangles, 0);
});

test('the origin is the centre of the vertices; the matrix moves the layer to it', () => {
  const payload = { buildings: [{ id: 'a', surfaces: [{ type: 'roof', rings: [[[8, 48, 1], [10, 50, 2], [9, 49, 3]]] }] }] };
  assert.deepEqual(payloadOrigin(payload), [9, 49]);
  assert.equal(payloadOrigin({ buildings: [] }), null);
  const identity = [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1];
  assert.deepEqual(originMatrix(identity, 0.25, 0.5), [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0.25, 0.5, 0, 1]);
  const scale = [2, 0, 0, 0, 0, 3, 0, 0, 0, 0, 1, 0, 1, 1, 0, 1];
  assert.deepEqual(originMatrix(scale, 0.25, 0.5).slice(12), [1.5, 2.5, 0, 1]); // (2·0.25 + 1, 3·0.5 + 1)
});

test('LoD2 buildings are flattened in the LoD1 extrusion, the others keep their height', () => {
  const height = ['get', 'height_m'];
  assert.equal(heightWithoutLod2(height, []), height);
  assert.deepEqual(heightWithoutLod2(height, ['a', 'b', 'a']), ['match', ['to-string', ['get', 'building_id']], ['a', 'b'], 0, height]);
});
