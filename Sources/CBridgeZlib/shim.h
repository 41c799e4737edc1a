#ifndef CBRIDGE_ZLIB_SHIM_H
#define CBRIDGE_ZLIB_SHIM_H
#include <zlib.h>

/// deflateInit2 is a macro in zlib.h (it passes the version and the stream's size), which Swift
/// cannot call; this is the same call as a function. windowBits 15 + 16 writes a gzip wrapper.
static inline int cbridge_deflate_init_gzip(z_streamp stream, int level) {
    return deflateInit2(stream, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
}

/// inflateInit2 likewise; windowBits 15 + 32 accepts a gzip or a zlib wrapper.
static inline int cbridge_inflate_init_auto(z_streamp stream) {
    return inflateInit2(stream, 15 + 32);
}
#endif
