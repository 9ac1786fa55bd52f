// Wrappers for libcurl's variadic calls, which Swift cannot call directly. Its own target, apart from
// libmicrohttpd's (CShims), so that the controller's HTTP client links libcurl alone.
#ifndef CODERUNNER_CCURLSHIMS_H
#define CODERUNNER_CCURLSHIMS_H

#include <curl/curl.h>

// curl_easy_setopt is variadic; one typed wrapper per argument kind.
CURLcode cr_curl_setopt_long(CURL *handle, CURLoption option, long value);
CURLcode cr_curl_setopt_string(CURL *handle, CURLoption option, const char *value);
CURLcode cr_curl_setopt_pointer(CURL *handle, CURLoption option, void *value);
/// CURLOPT_WRITEFUNCTION and CURLOPT_HEADERFUNCTION, which share one signature.
CURLcode cr_curl_setopt_write_callback(CURL *handle, CURLoption option, curl_write_callback callback);
CURLcode cr_curl_getinfo_long(CURL *handle, CURLINFO info, long *value);
CURLMcode cr_curl_multi_setopt_long(CURLM *multi, CURLMoption option, long value);

#endif
