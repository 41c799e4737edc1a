#ifndef CBRIDGE_CURL_SHIM_H
#define CBRIDGE_CURL_SHIM_H
#include <curl/curl.h>
#endif
