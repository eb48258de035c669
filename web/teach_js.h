// web/teach.cpp's calls into the page (shell/ferkit-shell.js): browser storage, downloads, the fine-tuning
// worker and file import. Included once, by web/teach.cpp (EM_JS defines the functions).
#pragma once
#include <emscripten.h>

// IndexedDB: the samples (n 48x48 crops and their labels); a model file under key "base" or "model" (size 0:
// delete it). The outcome comes back through ferkit_storage_result.
EM_JS(void, ferkit_js_store_samples, (const unsigned char* crops, const unsigned char* labels, int n), {
  Module.ferkitShell.storeSamples(crops, labels, n);
});
EM_JS(void, ferkit_js_store_model, (const char* key, const unsigned char* data, int size), {
  Module.ferkitShell.storeModel(UTF8ToString(key), data, size);
});
EM_JS(void, ferkit_js_download, (const unsigned char* data, int size, const char* name), {
  Module.ferkitShell.download(data, size, UTF8ToString(name));
});
// Starts fine-tuning in the worker (inputs are copied at once); results come back through ferkit_finetune_*.
EM_JS(void, ferkit_js_finetune_start, (const unsigned char* model, int model_size, const unsigned char* crops,
                                       const unsigned char* labels, int n, const char* settings), {
  Module.ferkitShell.finetuneStart(model, model_size, crops, labels, n, UTF8ToString(settings));
});
EM_JS(void, ferkit_js_finetune_cancel, (), { Module.ferkitShell.finetuneCancel(); });
// A file picker for images; each chosen file comes back through ferkit_import_image with this label.
EM_JS(void, ferkit_js_import_images, (int label), { Module.ferkitShell.importImages(label); });
