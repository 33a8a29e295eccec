// Loader of the native C++ backend (native/, built by node-gyp or shipped as a prebuild).
// Filled in by the native-backend issue; until then it reports why it is unavailable.
import type { Backend } from './backend.js';

export function loadNativeBackend(): Backend {
  throw new Error('the native addon is not part of this build yet');
}
