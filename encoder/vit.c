#include "encoder_internal.h"
/* stub: to be written */
