// SPDX-License-Identifier: MIT
/* A file of one part that includes bitmap.h (tests/CMakeLists.txt, fence). */
#include "bitmap.h"
