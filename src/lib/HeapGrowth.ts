import { setFlagsFromString } from "node:v8"

/**
 * Imported first by main.ts. After each full GC V8 lets the old generation grow to up to 4× what
 * survived; a pass promotes every batch's short-lived garbage (mail held from FETCH to commit), so
 * the heap filled to about four times its live objects, and that set the peak RSS. 2.5× lowers the
 * peak for a few per cent of pass time (docs/performance.md). Unlike --max-semi-space-size, which
 * V8 reads only when the heap is made, this flag is read at every full GC, so it can be set here.
 */
setFlagsFromString("--heap-growing-percent=150")
