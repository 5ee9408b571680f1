// Imported first by convert-entry.ts for its side effect: start a conversion's worker threads
// (convert/prestart.ts) before the modules after it are evaluated, unless only help is asked for.
import { prestartConversion } from '../convert/prestart.js';
import { prestartWanted } from './main.js';

if (prestartWanted(process.argv.slice(2), 'convert')) prestartConversion();
