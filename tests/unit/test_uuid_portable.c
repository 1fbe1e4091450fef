/*
 * test_uuid_portable.c - the tests of test_uuid.c on the portable code of
 * uuid.c and uuid.h (the path of builds without SSE2): this file compiles
 * both with LS_UUID_PORTABLE, so its ls_uuid_pack() is the one linked
 * (the library's table.c keeps its own SSE2 compare).
 */
#define LS_UUID_PORTABLE
#include "engine/uuid.c"
#include "test_uuid.c"
