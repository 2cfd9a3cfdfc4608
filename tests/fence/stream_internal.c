// SPDX-License-Identifier: MIT
/* A file of one part that includes stream_internal.h (tests/CMakeLists.txt, fence). */
#include "stream_internal.h"
