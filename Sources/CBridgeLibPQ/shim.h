#ifndef CBRIDGE_LIBPQ_SHIM_H
#define CBRIDGE_LIBPQ_SHIM_H
#include <libpq-fe.h>
#endif
