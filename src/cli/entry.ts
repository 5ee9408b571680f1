// Process entry of the `dadi` command (bin/dadi.js loads the built copy of this file).
import { main } from './main.js';

await main(process.argv.slice(2));
