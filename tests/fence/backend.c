// SPDX-License-Identifier: MIT
/* A file of one part that includes backend.h (tests/CMakeLists.txt, fence). */
#include "backend.h"
