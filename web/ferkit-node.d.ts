// Types of ferkit-node.mjs, the package's entry under node (no DOM): classify() takes RGBA pixels.
import type { Ferkit, ImageDataLike, LoadOptions } from './ferkit-api.js';

export type * from './ferkit-api.js';

/** What classify() takes under node. */
export type FerkitSource = ImageDataLike;

/** Reads the engine, the model and the face detector (file paths or file: URLs), and starts the engine. */
export declare function loadFerkit(options?: LoadOptions): Promise<Ferkit<FerkitSource>>;
