/* Placeholder: being written. */
#include "../core/core.h"
