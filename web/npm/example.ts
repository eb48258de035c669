// A TypeScript page using the npm package (checked by tests/web/npm.test.mjs: tsc --noEmit with "dom" and
// moduleResolution "bundler", so 'ferkit' resolves to ferkit.mjs and ferkit.d.ts). The @ts-expect-error lines
// must stay errors: they show the declarations constrain what they describe.
import { loadFerkit, type ExpressionName, type Face, type Ferkit, type FerkitSource, type SaliencyMap } from 'ferkit';

export async function start(video: HTMLVideoElement, canvas: HTMLCanvasElement): Promise<Ferkit<FerkitSource>> {
  const ferkit = await loadFerkit({ modelUrl: new URL('my-model.ferkit', location.href) });
  const g = canvas.getContext('2d');
  const frame = (): void => {
    const faces: Face[] = ferkit.classify(video, { smooth: true });
    for (const face of faces) {
      const p: number = face.probabilities[face.label];
      const map: SaliencyMap = ferkit.explain(face, { method: 'gradcam', class: 'happy' });
      const explained: ExpressionName = map.label;
      g?.strokeRect(face.box.x, face.box.y, face.box.w, face.box.h);
      g?.fillText(`${face.label} ${Math.round(100 * p)}% (${explained}: ${map.length} values)`, face.box.x, face.box.y);
      for (const k of Object.values(face.landmarks)) g?.fillRect(k.x - 1, k.y - 1, 3, 3);
      const turned: number = face.cropRegion.angle;
      console.log(face.track, face.missed, face.score, turned);
    }
    requestAnimationFrame(frame);
  };
  requestAnimationFrame(frame);
  const rows: number[][] = ferkit.classifyCrops(new Uint8Array(2304));
  console.log(rows[0].length, ferkit.info.name, ferkit.info.params, ferkit.info.accuracy ?? 'n/a', ferkit.classNames.join());
  ferkit.classify(new OffscreenCanvas(64, 64));
  ferkit.classify({ data: new Uint8ClampedArray(16), width: 2, height: 2 });
  ferkit.loadModel(await (await fetch('other.ferkit')).arrayBuffer());
  const M = ferkit.engine;
  console.log(M.UTF8ToString(M._fk_last_error()), M.HEAPU8.length);
  // @ts-expect-error: a number is not an image source
  ferkit.classify(42);
  // @ts-expect-error: no such expression
  const bored: ExpressionName = 'bored';
  // @ts-expect-error: no such saliency method
  ferkit.explain(new Uint8Array(2304), { method: 'lime' });
  // @ts-expect-error: info is read-only
  ferkit.info = ferkit.info;
  console.log(bored);
  return ferkit;
}
