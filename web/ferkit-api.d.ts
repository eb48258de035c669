// Types of the ferkit JS API shared by ferkit.d.ts (browsers, workers, bundlers) and ferkit-node.d.ts (node).
// The implementation is ferkit-api.mjs; web/engine.cpp documents the engine's C functions.

/** The seven expressions, in the model's (FER-2013's) order. */
export type ExpressionName = 'angry' | 'disgust' | 'fear' | 'happy' | 'sad' | 'surprise' | 'neutral';

/** A rectangle in the source's pixels. */
export interface Box {
  x: number;
  y: number;
  w: number;
  h: number;
}

/** One probability per expression, in classNames order; they sum to 1. */
export type Probabilities = Record<ExpressionName, number>;

/** A point in the source's pixels. */
export interface Point {
  x: number;
  y: number;
}

/** The detector's six landmarks (right and left are the person's: the right eye is on the image's left). */
export interface Landmarks {
  rightEye: Point;
  leftEye: Point;
  noseTip: Point;
  mouth: Point;
  rightEar: Point;
  leftEar: Point;
}

/** A square of the source, turned by angle (radians, clockwise on screen) about its centre (x, y). */
export interface Region {
  x: number;
  y: number;
  side: number;
  angle: number;
}

/** A face found by classify(). */
export interface Face {
  box: Box;
  /** The detector's confidence that this is a face (0..1). */
  score: number;
  probabilities: Probabilities;
  /** The most probable expression. */
  label: ExpressionName;
  landmarks: Landmarks;
  /** The 48x48 grey crop the model saw (2304 bytes, row-major), turned so the eyes are level. */
  crop: Uint8Array;
  /** The square of the source the crop was resampled from (where to draw a saliency map over the source). */
  cropRegion: Region;
  /** A stable id while the face stays in view over successive calls. */
  track: number;
  /** Calls since the detector last found this face (0: found in this one; with smooth, a face missed once keeps its box). */
  missed: number;
}

/** RGBA pixels, 4 bytes a pixel, row-major (an ImageData or any object of that shape). */
export interface ImageDataLike {
  readonly data: ArrayLike<number>;
  readonly width: number;
  readonly height: number;
}

/** An ArrayBuffer or a typed array (or DataView) over the bytes. */
export type BinaryData = ArrayBuffer | ArrayBufferView;

export interface ClassifyOptions {
  /**
   * Successive calls are frames of one video: average each tracked face's probabilities over them (every other call
   * classifies the mirrored faces, so the average covers both views), steady the boxes, look again for a face the
   * detector misses where it was and keep its box for one call. Default false.
   */
  smooth?: boolean;
  /** A photo: search the whole image in tiles for small faces as well (slower; no tracking). Default false. */
  still?: boolean;
}

export type ExplainMethod = 'gradcam' | 'gradient-x-input' | 'smoothgrad';

export interface ExplainOptions {
  /** Default 'gradcam' (coarse, about one network run); the pixel-gradient methods are finer. */
  method?: ExplainMethod;
  /** The class explained, by name or index; default the predicted one. */
  class?: ExpressionName | number;
}

/** 48 * 48 values in [0, 1], row-major over the crop, 1 where the class's score depends most on the pixels. */
export interface SaliencyMap extends Float32Array {
  /** The class explained. */
  label: ExpressionName;
}

/** What the current model says about itself (its file's metadata). */
export interface ModelInfo {
  name: string;
  params: number;
  /** Multiply-adds per face. */
  macs: number;
  classes: ExpressionName[];
  /** The accuracy recorded in the model file, when it has one (0..1). */
  accuracy?: number;
}

/** A URL or a string (a URL object, or anything with an href, is taken by its href). */
export type UrlLike = string | { readonly href: string };

export interface LoadOptions {
  /** Where ferkit-engine.wasm and assets/ live; default: the module's own folder. */
  baseUrl?: UrlLike;
  /** A .ferkit model file to use instead of assets/default.ferkit. */
  modelUrl?: UrlLike;
  /** A face detector model to use instead of assets/blazeface.ferkit. */
  detectorUrl?: UrlLike;
}

/** The raw Emscripten module (web/engine.cpp): pointers are byte offsets into HEAPU8. */
export interface FerkitEngine {
  readonly HEAPU8: Uint8Array;
  readonly HEAPF32: Float32Array;
  UTF8ToString(ptr: number): string;
  _malloc(bytes: number): number;
  _free(ptr: number): void;
  _fk_create(model: number, modelLen: number, detector: number, detectorLen: number): number;
  _fk_last_error(): number;
  _fk_buffer(bytes: number): number;
  _fk_classify_rgba(width: number, height: number, flags: number): number;
  _fk_results(): number;
  _fk_face_crop(i: number): number;
  _fk_explain(method: number, cls: number, out: number): number;
  _fk_classify_crops(n: number, out: number): void;
  _fk_class_name(i: number): number;
  _fk_num_params(): number;
  _fk_model_info(): number;
  _fk_ft_begin(model: number, modelLen: number, crops: number, labels: number, n: number, settingsJson: number): number;
  _fk_ft_run(budgetMs: number): number;
  _fk_ft_progress(): number;
  _fk_ft_finish(): number;
  _fk_ft_result(): number;
  _fk_ft_end(): void;
}

/** The object loadFerkit() resolves to; Source is what classify() takes on the platform. */
export interface Ferkit<Source = ImageDataLike> {
  /** Faces in the frame, largest first, boxes in the source's pixels ([] for a video without a frame yet). */
  classify(source: Source, options?: ClassifyOptions): Face[];
  /** n 48x48 grey crops (n * 2304 bytes, row-major) -> n arrays of 7 probabilities (classNames order). */
  classifyCrops(crops: BinaryData): number[][];
  /** A saliency map of a face from classify() or of a 48x48 grey crop (2304 bytes). */
  explain(faceOrCrop: Pick<Face, 'crop'> | BinaryData, options?: ExplainOptions): SaliencyMap;
  /** Replaces the model with a .ferkit file's bytes; throws (keeping the current model) on a bad file. */
  loadModel(bytes: BinaryData): void;
  readonly info: ModelInfo;
  readonly classNames: ExpressionName[];
  readonly engine: FerkitEngine;
}
