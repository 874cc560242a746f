/* fuzz_openai — OpenAI chat-completions response parsing (src/llm/request.c);
 * selector byte % 3: llm.constrain off, json_schema, guided_choice. */
#include "fuzz_response.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return fz_response("openai", 3, data, size); }
