/* keys.h — the credentials and fixed headers of an LLM client.
 *
 * Owns: reading the API key (llm.api_key_env or llm.api_key_file, the file
 * refused when group or others may read it), registering it with
 * rt_secret_add() so it is redacted everywhere, and building the header list
 * every request carries (content type, the key in the api's header,
 * llm.headers). The key never appears in an error message. */
#ifndef RT_LLM_KEYS_H
#define RT_LLM_KEYS_H

#include <curl/curl.h>

#include "base/err.h"
#include "format/config.h"

/* Read the key named by the config into *key (malloc'ed; NULL when neither
 * key is configured: local endpoints need none). RT_ERR_USAGE when both are
 * set, the variable is unset or empty, the file is missing, empty, holds a
 * control character, or is readable by group or others. */
int rt_llm_read_key(const rt_config *cfg, char **key, rt_err *err);

/* Call right after the config is loaded: when it names a key (llm.api_key_env
 * set in the environment, llm.api_key_file) or carries llm.headers, the
 * process becomes non-dumpable (rt_secret_guard) before any work, because
 * the environment and argv already hold the secret. */
void rt_llm_guard_secrets(const rt_config *cfg);

/* Build the request headers: Content-Type, an empty Expect (no 100-continue
 * round trip), the key ("Authorization: Bearer KEY" for openai,
 * "x-goog-api-key: KEY" for gemini; none when key is NULL) and the extra
 * headers of llm.headers ("Name: value; Name2: value2"). RT_ERR_USAGE naming
 * the bad entry. */
int rt_llm_build_headers(int gemini, const char *key, const char *extra, struct curl_slist **out, rt_err *err);

#endif
