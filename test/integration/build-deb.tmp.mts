import { debianLayout } from './debian-image.js';
const t = Date.now();
console.log(await debianLayout(), (Date.now() - t) / 1000, 's');
