// SPDX-License-Identifier: MIT
/* A file of one part that includes track.h (tests/CMakeLists.txt, fence). */
#include "track.h"
