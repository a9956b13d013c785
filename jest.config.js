/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  transform: {
    '^.+\\.(ts|js|mjs)$': ['@swc/jest', { jsc: { target: 'es2022' }, module: { type: 'commonjs' } }],
  },
  // Dependencies that ship only ES modules are compiled to CommonJS for jest: parquetjs → thrift → uuid, and the
  // report's plots, vega and vega-lite with their vega-*/d3-* modules and a few small ones.
  transformIgnorePatterns: [
    '/node_modules/(?!((thrift/node_modules/)?uuid|vega|vega-[^/]+|d3-[^/]+|internmap|delaunator|robust-predicates|json-stringify-pretty-compact)/)',
  ],
  // vega-canvas's Node build awaits `import('canvas')` at its top level, which CommonJS cannot express; its browser
  // build has no top-level await and, with no DOM, likewise finds no canvas (text is measured by estimate either way).
  moduleNameMapper: { '^vega-canvas$': '<rootDir>/node_modules/vega-canvas/build/vega-canvas.browser.js' },
  testMatch: ['<rootDir>/test/**/*.test.ts'],
  globalSetup: '<rootDir>/test/global-setup.ts',
  globalTeardown: '<rootDir>/test/global-teardown.ts',
  testTimeout: 180000,
};
