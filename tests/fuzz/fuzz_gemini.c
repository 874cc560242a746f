/* fuzz_gemini — Gemini generateContent response parsing (src/llm/request.c);
 * selector byte % 2: llm.constrain off, json_schema. */
#include "fuzz_response.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return fz_response("gemini", 2, data, size); }
