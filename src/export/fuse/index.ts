export { FuseExport, type FuseMountOptions, type FuseStats, threadpoolNeeded } from './export.js';
