// The buildings in LoD2 (or finer) as a MapLibre custom layer: their roof and wall surfaces drawn with
// WebGL2 in the map's own camera and depth buffer ("3d" rendering mode), so pitched roofs show as
// such between the LoD1 extrusions of the other buildings. On the terrain each building stands at its
// stored base elevation (the lowest DEM height under its footprint) times the terrain's exaggeration;
// on a flat map at 0. Why a custom layer: docs/viewer.md, "Buildings in their best LoD".

import * as maplibregl from 'maplibre-gl';
import { FLOATS_PER_VERTEX, buildMesh, mercatorX, mercatorY, originMatrix, payloadOrigin } from './lod2Mesh.js';
import { GREYS, OKABE_ITO } from './palettes.js';

const VERTEX_SHADER = `#version 300 es
uniform mat4 u_matrix;
uniform float u_meter;
uniform float u_base_scale;
in vec3 a_pos;
in float a_base;
in vec3 a_normal;
in float a_roof;
out vec3 v_normal;
out float v_roof;
void main() {
  float up = a_pos.z + a_base * u_base_scale;
  gl_Position = u_matrix * vec4(a_pos.x * u_meter, -a_pos.y * u_meter, up * u_meter, 1.0);
  v_normal = a_normal;
  v_roof = a_roof;
}`;

const FRAGMENT_SHADER = `#version 300 es
precision highp float;
uniform vec3 u_roof_colour;
uniform vec3 u_wall_colour;
uniform vec3 u_light;
in vec3 v_normal;
in float v_roof;
out vec4 fragColor;
void main() {
  float lit = 0.6 + 0.4 * abs(dot(normalize(v_normal), u_light));
  vec3 colour = mix(u_wall_colour, u_roof_colour, v_roof) * lit;
  fragColor = vec4(colour, 1.0);
}`;

/** Light from the south-east, 60° above the horizon (east, north, up): walls facing it are lighter. */
const LIGHT = (() => {
  const [e, n, u] = [0.35, -0.35, Math.sqrt(3) / 2];
  const length = Math.hypot(e, n, u);
  return [e / length, n / length, u / length];
})();

function rgb(hex) {
  return [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16) / 255);
}

export const ROOF_COLOUR = OKABE_ITO.vermillion;
export const WALL_COLOUR = GREYS[1];

function compile(gl, type, source) {
  const shader = gl.createShader(type);
  gl.shaderSource(shader, source);
  gl.compileShader(shader);
  if (!gl.getShaderParameter(shader, gl.COMPILE_STATUS)) throw new Error(`LoD2 shader: ${gl.getShaderInfoLog(shader)}`);
  return shader;
}

/** A MapLibre custom layer drawing the buildings of one `/buildings/lod2.json` answer. */
export class Lod2Layer {
  constructor(payload, { id = 'buildings-lod2' } = {}) {
    this.id = id;
    this.type = 'custom';
    this.renderingMode = '3d';
    const origin = payloadOrigin(payload) || [0, 0];
    this.origin = [mercatorX(origin[0]), mercatorY(origin[1])];
    this.meter = maplibregl.MercatorCoordinate.fromLngLat(origin).meterInMercatorCoordinateUnits();
    this.mesh = buildMesh(payload, origin, this.meter);
    this.frames = 0;
  }

  /** What the layer draws, for the page and its tests. */
  summary() {
    return { buildings: this.mesh.buildings, triangles: this.mesh.triangles, ids: this.mesh.ids, frames: this.frames };
  }

  onAdd(map, gl) {
    this.map = map;
    const program = gl.createProgram();
    gl.attachShader(program, compile(gl, gl.VERTEX_SHADER, VERTEX_SHADER));
    gl.attachShader(program, compile(gl, gl.FRAGMENT_SHADER, FRAGMENT_SHADER));
    gl.linkProgram(program);
    if (!gl.getProgramParameter(program, gl.LINK_STATUS)) throw new Error(`LoD2 program: ${gl.getProgramInfoLog(program)}`);
    this.program = program;
    this.uniforms = Object.fromEntries(
      ['u_matrix', 'u_meter', 'u_base_scale', 'u_roof_colour', 'u_wall_colour', 'u_light'].map((name) => [name, gl.getUniformLocation(program, name)]),
    );
    this.vao = gl.createVertexArray();
    gl.bindVertexArray(this.vao);
    this.buffer = gl.createBuffer();
    gl.bindBuffer(gl.ARRAY_BUFFER, this.buffer);
    gl.bufferData(gl.ARRAY_BUFFER, this.mesh.vertices, gl.STATIC_DRAW);
    const stride = FLOATS_PER_VERTEX * 4;
    const attributes = [['a_pos', 3, 0], ['a_base', 1, 3], ['a_normal', 3, 4], ['a_roof', 1, 7]];
    for (const [name, size, offset] of attributes) {
      const location = gl.getAttribLocation(program, name);
      gl.enableVertexAttribArray(location);
      gl.vertexAttribPointer(location, size, gl.FLOAT, false, stride, offset * 4);
    }
    gl.bindVertexArray(null);
  }

  onRemove(_map, gl) {
    gl.deleteBuffer(this.buffer);
    gl.deleteVertexArray(this.vao);
    gl.deleteProgram(this.program);
  }

  render(gl, args) {
    if (!this.mesh.triangles) return;
    const terrain = this.map.getTerrain();
    gl.useProgram(this.program);
    gl.uniformMatrix4fv(this.uniforms.u_matrix, false, new Float32Array(originMatrix(args.defaultProjectionData.mainMatrix, ...this.origin)));
    gl.uniform1f(this.uniforms.u_meter, this.meter);
    gl.uniform1f(this.uniforms.u_base_scale, terrain ? (terrain.exaggeration ?? 1) : 0);
    gl.uniform3fv(this.uniforms.u_roof_colour, rgb(ROOF_COLOUR));
    gl.uniform3fv(this.uniforms.u_wall_colour, rgb(WALL_COLOUR));
    gl.uniform3fv(this.uniforms.u_light, LIGHT);
    gl.bindVertexArray(this.vao);
    gl.drawArrays(gl.TRIANGLES, 0, this.mesh.triangles * 3);
    gl.bindVertexArray(null);
    this.frames += 1;
  }
}
