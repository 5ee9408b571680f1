import { convertImage, lineProgress } from '../src/convert/index.js';
import { parsePlatform } from '../src/oci/platform.js';
const r = await convertImage('oci:/work/shared/fixtures/oci/hello-world:nested-index', 'oci:/tmp/cv/out:hello', { platform: parsePlatform('linux/amd64'), workDir: '/tmp/cv/work', progress: lineProgress() });
console.log(JSON.stringify(r, null, 1));
