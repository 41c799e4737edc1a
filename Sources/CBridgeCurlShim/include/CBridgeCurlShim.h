// Typed wrappers for libcurl's variadic calls, which Swift cannot call directly.
// Each wrapper fixes the type of the third argument so the compiler checks it.
#ifndef CBRIDGE_CURL_SHIM_PUBLIC_H
#define CBRIDGE_CURL_SHIM_PUBLIC_H
#include <curl/curl.h>

typedef size_t (*cbridge_curl_data_cb)(char *ptr, size_t size, size_t nmemb, void *userdata);

CURLcode cbridge_curl_setopt_long(CURL *handle, CURLoption option, long value);
CURLcode cbridge_curl_setopt_string(CURL *handle, CURLoption option, const char *value);
CURLcode cbridge_curl_setopt_pointer(CURL *handle, CURLoption option, void *value);
CURLcode cbridge_curl_setopt_slist(CURL *handle, CURLoption option, struct curl_slist *value);
CURLcode cbridge_curl_setopt_write_function(CURL *handle, CURLoption option, cbridge_curl_data_cb value);
CURLcode cbridge_curl_setopt_off_t(CURL *handle, CURLoption option, curl_off_t value);

CURLcode cbridge_curl_getinfo_long(CURL *handle, CURLINFO info, long *value);
CURLcode cbridge_curl_getinfo_double(CURL *handle, CURLINFO info, double *value);
CURLcode cbridge_curl_getinfo_string(CURL *handle, CURLINFO info, const char **value);
CURLcode cbridge_curl_getinfo_pointer(CURL *handle, CURLINFO info, void **value);

CURLMcode cbridge_curl_multi_setopt_long(CURLM *handle, CURLMoption option, long value);

#endif
