export { type ListenTarget, type NbdExport, NbdServer, type NbdServerOptions, nbdErrno } from './server.js';
