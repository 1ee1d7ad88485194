/* Placeholder: being written. */
#include "cube_private.h"
