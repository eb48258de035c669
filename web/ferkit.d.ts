// Types of ferkit.mjs, the package's entry for browsers, workers and bundlers.
import type { Ferkit, ImageDataLike, LoadOptions } from './ferkit-api.js';

export type * from './ferkit-api.js';

/** What classify() takes in a browser or worker (an <img> must have finished loading). */
export type FerkitSource = ImageData | ImageDataLike | HTMLVideoElement | HTMLCanvasElement | OffscreenCanvas |
  ImageBitmap | HTMLImageElement;

/** Fetches the engine, the model and the face detector, and starts the engine. */
export declare function loadFerkit(options?: LoadOptions): Promise<Ferkit<FerkitSource>>;
