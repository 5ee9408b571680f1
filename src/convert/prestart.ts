// What `dadi convert` starts before it loads the converter (cli/main.ts): the threads a conversion
// decodes and compresses on. Their own start (a Node environment and its modules each, ~0.1 s of
// CPU) then runs beside the main thread's loading (~0.3 s) instead of after it. Light on purpose:
// importing this module loads neither the codecs nor the converter.

import { warmCompressThreads } from '../format/zfile/compress-pool.js';
import { prestartUnpackThread } from './unpack-thread.js';

/** Start the first layer's unpack thread and the compression workers. */
export function prestartConversion(): void {
  prestartUnpackThread();
  warmCompressThreads();
}
