/**
 * Entry of the fabric's helper processes, started inside namespaces with
 * `ip netns exec NS node child.js relay CONFIG.json` or `... forward A B`.
 * (Run from dist-tools/ by `npm run fabric`; bundled from the sources by tests.)
 */
import { forwardMain } from './forward.js';
import { relayMain } from './relay.js';

const [command, ...args] = process.argv.slice(2);
const main = command === 'relay' ? relayMain : command === 'forward' ? forwardMain : null;
if (!main) {
  process.stderr.write('usage: child.js relay CONFIG.json | forward LISTEN TARGET\n');
  process.exit(2);
}
main(args).catch((error: unknown) => {
  process.stderr.write(`fabric ${command}: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
