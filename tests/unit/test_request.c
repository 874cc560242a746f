/* test_request.c — LLM request bodies (OpenAI, Gemini, constrained output)
 * checked field by field and, for the spliced builder, byte for byte against
 * a jansson-built reference on random bytes; response parsing, API keys,
 * headers, redaction, and the pacing helpers (token bucket, backoff, the
 * adaptive 429 rate on synthetic clocks). No network. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/err.h"
#include "base/util.h"
#include "format/catalog.h"
#include "format/config.h"
#include "llm/infer.h"
#include "llm/keys.h"
#include "llm/ratelimit.h"
#include "llm/request.h"

static const char *DESCS[] = {"jazz, saxophone", "hiking, mountains", "cooking \"pasta\", italian",
                              "k-pop, dance"};
static rt_catalog cat;
static rt_config cfg;
static char tmpdir[256];

static void setup(void) {
  uint32_t ids[] = {10, 20, 30, 40};
  rt_err e = {0};
  cr_assert_eq(rt_catalog_build(ids, DESCS, 4, "test", &cat, &e), RT_OK, "%s", e.msg);
  rt_config_defaults(&cfg);
  snprintf(tmpdir, sizeof tmpdir, "/tmp/rt_request_XXXXXX");
  cr_assert_not_null(mkdtemp(tmpdir));
}

static void teardown(void) {
  rt_catalog_free(&cat);
  rt_config_free(&cfg);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  cr_assert_eq(system(cmd), 0);
}

TestSuite(request, .init = setup, .fini = teardown);

static void set(const char *kv) {
  rt_err e = {0};
  cr_assert_eq(rt_config_set(&cfg, kv, &e), RT_OK, "%s: %s", kv, e.msg);
}

static json_t *body_json(rt_llm_reqfmt *f, const char *sys, const char *user, int64_t seed) {
  size_t len;
  char *b = rt_llm_build_body(f, sys, user, seed, &len);
  cr_assert_eq(strlen(b), len);
  json_error_t je;
  json_t *j = json_loads(b, 0, &je);
  cr_assert_not_null(j, "body is not JSON (%s): %s", je.text, b);
  free(b);
  return j;
}

static void assert_enum(json_t *arr) {
  cr_assert(json_is_array(arr));
  cr_assert_eq(json_array_size(arr), 4);
  for (size_t i = 0; i < 4; i++) cr_assert_str_eq(json_string_value(json_array_get(arr, i)), DESCS[i]);
}

Test(request, openai_plain_body_fields) {
  set("llm.model=gpt-test");
  set("llm.temperature=0.7");
  set("llm.max_tokens=48");
  rt_llm_reqfmt f;
  rt_err e = {0};
  cr_assert_eq(rt_llm_reqfmt_init(&f, &cfg, &cat, &e), RT_OK, "%s", e.msg);
  json_t *j = body_json(&f, "be brief", "pair: jazz -> \"hiking\"\nnext?", 42);
  cr_assert_str_eq(json_string_value(json_object_get(j, "model")), "gpt-test");
  json_t *msgs = json_object_get(j, "messages");
  cr_assert_eq(json_array_size(msgs), 2);
  cr_assert_str_eq(json_string_value(json_object_get(json_array_get(msgs, 0), "role")), "system");
  cr_assert_str_eq(json_string_value(json_object_get(json_array_get(msgs, 0), "content")), "be brief");
  cr_assert_str_eq(json_string_value(json_object_get(json_array_get(msgs, 1), "role")), "user");
  cr_assert_str_eq(json_string_value(json_object_get(json_array_get(msgs, 1), "content")),
                   "pair: jazz -> \"hiking\"\nnext?");
  cr_assert(json_is_real(json_object_get(j, "temperature")));
  cr_assert_float_eq(json_real_value(json_object_get(j, "temperature")), 0.7, 1e-12);
  cr_assert_eq(json_integer_value(json_object_get(j, "max_tokens")), 48);
  cr_assert_eq(json_integer_value(json_object_get(j, "seed")), 42);
  cr_assert_null(json_object_get(j, "response_format"));
  cr_assert_null(json_object_get(j, "guided_choice"));
  cr_assert_eq(json_object_size(j), 5);
  json_decref(j);
  /* No system message, seed 0: neither is sent. */
  j = body_json(&f, NULL, "u", 0);
  cr_assert_eq(json_array_size(json_object_get(j, "messages")), 1);
  cr_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(j, "messages"), 0), "role")),
                   "user");
  cr_assert_null(json_object_get(j, "seed"));
  json_decref(j);
  rt_llm_reqfmt_free(&f);
}

Test(request, openai_json_schema_body) {
  set("llm.constrain=json_schema");
  rt_llm_reqfmt f;
  rt_err e = {0};
  cr_assert_eq(rt_llm_reqfmt_init(&f, &cfg, &cat, &e), RT_OK, "%s", e.msg);
  json_t *j = body_json(&f, NULL, "next?", 7);
  json_t *rf = json_object_get(j, "response_format");
  cr_assert_str_eq(json_string_value(json_object_get(rf, "type")), "json_schema");
  json_t *js = json_object_get(rf, "json_schema");
  cr_assert_str_eq(json_string_value(json_object_get(js, "name")), "next_cluster");
  cr_assert(json_is_true(json_object_get(js, "strict")));
  json_t *schema = json_object_get(js, "schema");
  cr_assert_str_eq(json_string_value(json_object_get(schema, "type")), "object");
  json_t *cl = json_object_get(json_object_get(schema, "properties"), "cluster");
  cr_assert_str_eq(json_string_value(json_object_get(cl, "type")), "string");
  assert_enum(json_object_get(cl, "enum"));
  cr_assert_eq(json_object_size(json_object_get(schema, "properties")), 1);
  json_t *req = json_object_get(schema, "required");
  cr_assert_eq(json_array_size(req), 1);
  cr_assert_str_eq(json_string_value(json_array_get(req, 0)), "cluster");
  cr_assert(json_is_false(json_object_get(schema, "additionalProperties")));
  cr_assert_null(json_object_get(j, "guided_choice"));
  cr_assert_eq(json_integer_value(json_object_get(j, "seed")), 7);
  json_decref(j);
  rt_llm_reqfmt_free(&f);
}

Test(request, openai_guided_choice_body) {
  set("llm.constrain=guided_choice");
  rt_llm_reqfmt f;
  rt_err e = {0};
  cr_assert_eq(rt_llm_reqfmt_init(&f, &cfg, &cat, &e), RT_OK, "%s", e.msg);
  json_t *j = body_json(&f, "s", "u", 0);
  assert_enum(json_object_get(j, "guided_choice"));
  cr_assert_null(json_object_get(j, "response_format"));
  cr_assert_eq(json_array_size(json_object_get(j, "messages")), 2);
  json_decref(j);
  rt_llm_reqfmt_free(&f);
}

Test(request, gemini_body_and_enum) {
  set("llm.api=gemini");
  set("llm.model=gemini-2.0-flash");
  set("llm.temperature=0.25");
  set("llm.max_tokens=32");
  rt_llm_reqfmt f;
  rt_err e = {0};
  cr_assert_eq(rt_llm_reqfmt_init(&f, &cfg, &cat, &e), RT_OK, "%s", e.msg);
  json_t *j = body_json(&f, "system text", "user text", 9);
  json_t *c0 = json_array_get(json_object_get(j, "contents"), 0);
  cr_assert_eq(json_array_size(json_object_get(j, "contents")), 1);
  cr_assert_str_eq(json_string_value(json_object_get(c0, "role")), "user");
  cr_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(c0, "parts"), 0), "text")),
                   "user text");
  json_t *si = json_object_get(j, "systemInstruction");
  cr_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(si, "parts"), 0), "text")),
                   "system text");
  json_t *gc = json_object_get(j, "generationConfig");
  cr_assert_float_eq(json_real_value(json_object_get(gc, "temperature")), 0.25, 1e-12);
  cr_assert_eq(json_integer_value(json_object_get(gc, "maxOutputTokens")), 32);
  cr_assert_eq(json_integer_value(json_object_get(gc, "seed")), 9);
  cr_assert_null(json_object_get(gc, "responseMimeType"));
  cr_assert_null(json_object_get(j, "model"), "gemini names the model in the URL");
  json_decref(j);
  char *url = rt_llm_endpoint_url(&f, "https://example.test/");
  cr_assert_str_eq(url, "https://example.test/v1beta/models/gemini-2.0-flash:generateContent");
  free(url);
  rt_llm_reqfmt_free(&f);

  set("llm.constrain=json_schema");
  cr_assert_eq(rt_llm_reqfmt_init(&f, &cfg, &cat, &e), RT_OK, "%s", e.msg);
  j = body_json(&f, NULL, "u", 0);
  cr_assert_null(json_object_get(j, "systemInstruction"));
  gc = json_object_get(j, "generationConfig");
  cr_assert_str_eq(json_string_value(json_object_get(gc, "responseMimeType")), "text/x.enum");
  json_t *rs = json_object_get(gc, "responseSchema");
  cr_assert_str_eq(json_string_value(json_object_get(rs, "type")), "STRING");
  assert_enum(json_object_get(rs, "enum"));
  cr_assert_null(json_object_get(gc, "seed"));
  cr_assert_eq(json_integer_value(json_object_get(gc, "maxOutputTokens")), 32);
  cr_assert_null(json_object_get(j, "response_format"));
  json_decref(j);
  rt_llm_reqfmt_free(&f);
}

Test(request, openai_url_and_bad_combinations) {
  rt_llm_reqfmt f;
  rt_err e = {0};
  cr_assert_eq(rt_llm_reqfmt_init(&f, &cfg, &cat, &e), RT_OK);
  char *url = rt_llm_endpoint_url(&f, "http://127.0.0.1:8088");
  cr_assert_str_eq(url, "http://127.0.0.1:8088/v1/chat/completions");
  free(url);
  rt_llm_reqfmt_free(&f);

  set("llm.api=gemini");
  set("llm.constrain=guided_choice");
  cr_assert_eq(rt_llm_reqfmt_init(&f, &cfg, &cat, &e), RT_ERR_USAGE);
  cr_assert(strstr(e.msg, "guided_choice") && strstr(e.msg, "json_schema"), "%s", e.msg);

  set("llm.api=retrieval");
  set("llm.constrain=off");
  rt_llm_client *c = NULL;
  e.code = 0;
  cr_assert_eq(rt_llm_client_new(&cfg, &cat, &c, &e), RT_ERR_USAGE);
  cr_assert_null(c);
  cr_assert(strstr(e.msg, "retrieval"), "%s", e.msg);

  set("llm.api=openai");
  set("llm.base_url=ftp://x");
  cr_assert_eq(rt_llm_client_new(&cfg, &cat, &c, &e), RT_ERR_USAGE);
  cr_assert(strstr(e.msg, "llm.base_url"), "%s", e.msg);
}

Test(request, body_is_deterministic_and_escapes) {
  set("llm.constrain=json_schema");
  rt_llm_reqfmt f;
  rt_err e = {0};
  cr_assert_eq(rt_llm_reqfmt_init(&f, &cfg, &cat, &e), RT_OK);
  const char *user = "tab\there \"quoted\" back\\slash caf\xc3\xa9 \x01";
  size_t l1, l2;
  char *b1 = rt_llm_build_body(&f, NULL, user, 3, &l1);
  char *b2 = rt_llm_build_body(&f, NULL, user, 3, &l2);
  cr_assert_eq(l1, l2);
  cr_assert_eq(memcmp(b1, b2, l1), 0);
  json_t *j = json_loads(b1, 0, NULL);
  cr_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(j, "messages"), 0), "content")),
                   user);
  json_decref(j);
  free(b1);
  free(b2);
  /* Invalid UTF-8 still produces valid JSON (lossy), never a failure. */
  char *b3 = rt_llm_build_body(&f, NULL, "bad \xff byte", 0, &l1);
  j = json_loads(b3, 0, NULL);
  cr_assert_not_null(j);
  cr_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(j, "messages"), 0), "content")),
                   "bad ? byte");
  json_decref(j);
  free(b3);
  rt_llm_reqfmt_free(&f);
}

/* Random strings over the bytes that matter to JSON escaping and UTF-8
 * validation: ASCII, controls, quotes, valid 2-4 byte sequences, and invalid
 * ones (lone continuations, overlongs, surrogates, > U+10FFFF, truncated). */
static void random_text(uint64_t *st, char *out, size_t cap) {
  static const char *const atoms[] = {
      "a",  "Z",  " ",  "\"", "\\", "/",  "\b", "\f", "\n", "\r", "\t", "\x01", "\x1f", "\x7f", "caf\xc3\xa9",
      "\xe2\x82\xac", "\xf0\x9f\x8e\xb5", "\xef\xbf\xbf", "\xf4\x8f\xbf\xbf", /* valid, up to U+10FFFF */
      "\xff", "\x80", "\xc0\xaf", "\xc1\xbf", "\xe0\x80\xaf", "\xed\xa0\x80", "\xf0\x80\x80\xaf",
      "\xf4\x90\x80\x80", "\xf5\x80\x80\x80", "\xc3", "\xe2\x82", "u\\u0041", "%s%d"};
  size_t n = sizeof atoms / sizeof atoms[0], w = 0;
  *st = *st * 6364136223846793005ULL + 1442695040888963407ULL;
  int len = (int)((*st >> 33) % 24);
  for (int i = 0; i < len; i++) {
    *st = *st * 6364136223846793005ULL + 1442695040888963407ULL;
    /* Mostly valid text; an invalid atom in about one string of three. */
    size_t k = (size_t)(*st >> 33) % n;
    if (k >= 19 && k < 30 && ((*st >> 20) % 8) != 0) k = 0;
    const char *a = atoms[k];
    size_t al = strlen(a);
    if (w + al + 1 >= cap) break;
    memcpy(out + w, a, al);
    w += al;
  }
  out[w] = '\0';
}

static void same_as_reference(const char *api, const char *constrain, const char *model, const char *temp) {
  char kv[200];
  snprintf(kv, sizeof kv, "llm.api=%s", api);
  set(kv);
  snprintf(kv, sizeof kv, "llm.constrain=%s", constrain);
  set(kv);
  snprintf(kv, sizeof kv, "llm.model=%s", model);
  set(kv);
  snprintf(kv, sizeof kv, "llm.temperature=%s", temp);
  set(kv);
  rt_llm_reqfmt f;
  rt_err e = {0};
  cr_assert_eq(rt_llm_reqfmt_init(&f, &cfg, &cat, &e), RT_OK, "%s", e.msg);
  uint64_t st = 0x1234;
  int lossy_seen = 0;
  for (int i = 0; i < 3000; i++) {
    char user[256], sys[256];
    random_text(&st, user, sizeof user);
    random_text(&st, sys, sizeof sys);
    const char *system = (i % 3 == 0) ? NULL : sys;
    int64_t seed = (i % 4 == 0) ? 0 : (i % 4 == 1 ? -7 : (int64_t)i * 1000003);
    size_t l1, l2;
    /* Every third body leaves a pair out of the enum (some out of range, some repeated). */
    uint32_t ex[2] = {(uint32_t)(i % 5), (uint32_t)((i / 5) % 5)};
    int nex = i % 3 == 1 ? 2 : (i % 3 == 2 ? 1 : 0);
    char *fast = rt_llm_build_body_ex(&f, system, user, seed, ex, nex, &l1);
    char *ref = rt_llm_build_body_ref_ex(&f, system, user, seed, ex, nex, &l2);
    cr_assert_eq(strlen(fast), l1);
    cr_assert(l1 == l2 && memcmp(fast, ref, l1) == 0, "%s/%s body %d differs:\n fast %s\n ref  %s", api,
              constrain, i, fast, ref);
    if (strchr(ref, '?') && !strchr(user, '?')) lossy_seen = 1;
    free(fast);
    free(ref);
  }
  cr_assert(lossy_seen, "the random strings never hit the invalid-UTF-8 path");
  rt_llm_reqfmt_free(&f);
}

Test(request, spliced_body_equals_jansson_body) {
  same_as_reference("openai", "off", "gpt-test", "0.7");
  same_as_reference("openai", "json_schema", "m\"od\\el/\xc3\xa9", "0");
  same_as_reference("openai", "guided_choice", "bad\xffmodel", "1e-5");
  same_as_reference("gemini", "off", "gemini-2.0", "1");
  same_as_reference("gemini", "json_schema", "gemini-2.0", "0.3333333333333");
}

static int parse(rt_llm_reqfmt *f, const char *body, char **text, rt_llm_usage *u, char *why) {
  return rt_llm_parse_response(f, body, strlen(body), text, u, why, 256);
}

Test(request, parse_openai_responses) {
  rt_llm_reqfmt f;
  rt_err e = {0};
  cr_assert_eq(rt_llm_reqfmt_init(&f, &cfg, &cat, &e), RT_OK);
  char *t;
  rt_llm_usage u;
  char why[256];
  cr_assert_eq(parse(&f,
                     "{\"id\":\"x\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":"
                     "\"  jazz, saxophone\\n\"},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":12,"
                     "\"completion_tokens\":5,\"total_tokens\":17}}",
                     &t, &u, why),
               RT_OK, "%s", why);
  cr_assert_str_eq(t, "jazz, saxophone");
  cr_assert_eq(u.prompt_tokens, 12);
  cr_assert_eq(u.completion_tokens, 5);
  free(t);
  /* No usage: -1. Extra choices: the first wins. */
  cr_assert_eq(parse(&f, "{\"choices\":[{\"message\":{\"content\":\"a\"}},{\"message\":{\"content\":\"b\"}}]}", &t,
                     &u, why),
               RT_OK);
  cr_assert_str_eq(t, "a");
  cr_assert_eq(u.prompt_tokens, -1);
  free(t);
  /* Odd and malformed responses. */
  cr_assert_eq(parse(&f, "{\"choices\":[{\"message\":{\"con", &t, &u, why), RT_ERR_ENDPOINT);
  cr_assert_null(t);
  cr_assert(strstr(why, "malformed JSON") && strstr(why, "byte"), "%s", why);
  cr_assert_eq(parse(&f, "{\"choices\":[]}", &t, &u, why), RT_ERR_ENDPOINT);
  cr_assert(strstr(why, "choices[0]"), "%s", why);
  cr_assert_eq(parse(&f, "{\"choices\":[{\"message\":{\"content\":null}}]}", &t, &u, why), RT_ERR_ENDPOINT);
  cr_assert(strstr(why, "content"), "%s", why);
  cr_assert_eq(parse(&f, "[1,2]", &t, &u, why), RT_ERR_ENDPOINT);
  cr_assert_eq(parse(&f, "", &t, &u, why), RT_ERR_ENDPOINT);
  cr_assert_eq(parse(&f, "{\"error\":{\"message\":\"model overloaded\"}}", &t, &u, why), RT_ERR_ENDPOINT);
  cr_assert(strstr(why, "model overloaded"), "%s", why);
  rt_llm_reqfmt_free(&f);
}

Test(request, parse_json_schema_content) {
  set("llm.constrain=json_schema");
  rt_llm_reqfmt f;
  rt_err e = {0};
  cr_assert_eq(rt_llm_reqfmt_init(&f, &cfg, &cat, &e), RT_OK);
  char *t;
  char why[256];
  cr_assert_eq(parse(&f, "{\"choices\":[{\"message\":{\"content\":\"{\\\"cluster\\\": \\\"k-pop, dance\\\"}\"}}]}",
                     &t, NULL, why),
               RT_OK, "%s", why);
  cr_assert_str_eq(t, "k-pop, dance");
  free(t);
  /* Not such JSON: the content is returned raw. */
  cr_assert_eq(parse(&f, "{\"choices\":[{\"message\":{\"content\":\" hiking, mountains \"}}]}", &t, NULL, why),
               RT_OK);
  cr_assert_str_eq(t, "hiking, mountains");
  free(t);
  cr_assert_eq(parse(&f, "{\"choices\":[{\"message\":{\"content\":\"{\\\"other\\\":1}\"}}]}", &t, NULL, why), RT_OK);
  cr_assert_str_eq(t, "{\"other\":1}");
  free(t);
  rt_llm_reqfmt_free(&f);
}

Test(request, parse_gemini_responses) {
  set("llm.api=gemini");
  rt_llm_reqfmt f;
  rt_err e = {0};
  cr_assert_eq(rt_llm_reqfmt_init(&f, &cfg, &cat, &e), RT_OK);
  char *t;
  rt_llm_usage u;
  char why[256];
  cr_assert_eq(parse(&f,
                     "{\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"hiking, mountains\\n\"}]},"
                     "\"finishReason\":\"STOP\"}],\"usageMetadata\":{\"promptTokenCount\":20,"
                     "\"candidatesTokenCount\":3,\"totalTokenCount\":23}}",
                     &t, &u, why),
               RT_OK, "%s", why);
  cr_assert_str_eq(t, "hiking, mountains");
  cr_assert_eq(u.prompt_tokens, 20);
  cr_assert_eq(u.completion_tokens, 3);
  free(t);
  /* Several parts are joined; a thinking model's thought part is skipped. */
  cr_assert_eq(parse(&f,
                     "{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"let me think\",\"thought\":true},"
                     "{\"text\":\"jazz, \"},{\"text\":\"saxophone\"}]}}]}",
                     &t, &u, why),
               RT_OK, "%s", why);
  cr_assert_str_eq(t, "jazz, saxophone");
  free(t);
  cr_assert_eq(parse(&f, "{\"candidates\":[],\"promptFeedback\":{\"blockReason\":\"SAFETY\"}}", &t, &u, why),
               RT_ERR_ENDPOINT);
  cr_assert(strstr(why, "blocked") && strstr(why, "SAFETY"), "%s", why);
  cr_assert_eq(parse(&f, "{\"candidates\":[{\"content\":{\"parts\":[]}}]}", &t, &u, why), RT_ERR_ENDPOINT);
  cr_assert_eq(parse(&f, "{\"candidates\":[{\"finishReason\":\"MAX_TOKENS\"}]}", &t, &u, why), RT_ERR_ENDPOINT);
  cr_assert_eq(parse(&f, "not json", &t, &u, why), RT_ERR_ENDPOINT);
  cr_assert(strstr(why, "malformed"), "%s", why);
  /* An OpenAI-shaped answer is not a Gemini answer. */
  cr_assert_eq(parse(&f, "{\"choices\":[{\"message\":{\"content\":\"a\"}}]}", &t, &u, why), RT_ERR_ENDPOINT);
  rt_llm_reqfmt_free(&f);
}

Test(request, endpoint_error_messages) {
  char m[128];
  const char *b1 = "{\"error\":{\"message\":\"Incorrect API key provided\",\"type\":\"invalid_request_error\"}}";
  rt_llm_error_message(b1, strlen(b1), m, sizeof m);
  cr_assert_str_eq(m, "Incorrect API key provided");
  const char *b2 = "{\"error\":{\"code\":400,\"message\":\"API key not valid.\",\"status\":\"INVALID_ARGUMENT\"}}";
  rt_llm_error_message(b2, strlen(b2), m, sizeof m);
  cr_assert_str_eq(m, "API key not valid.");
  const char *b3 = "<html>\nBad Gateway\n</html>";
  rt_llm_error_message(b3, strlen(b3), m, sizeof m);
  cr_assert_str_eq(m, "<html> Bad Gateway </html>");
  rt_llm_error_message("", 0, m, sizeof m);
  cr_assert_str_eq(m, "");
}

static void write_file(const char *path, const char *data, mode_t mode) {
  FILE *f = fopen(path, "w");
  cr_assert_not_null(f);
  fputs(data, f);
  fclose(f);
  cr_assert_eq(chmod(path, mode), 0);
}

Test(request, key_file_permissions) {
  char path[400];
  snprintf(path, sizeof path, "%s/key", tmpdir);
  write_file(path, "sk-perm-test-0123456789\n", 0644);
  char spec[420];
  snprintf(spec, sizeof spec, "llm.api_key_file=%s", path);
  set(spec);
  char *key = NULL;
  rt_err e = {0};
  cr_assert_eq(rt_llm_read_key(&cfg, &key, &e), RT_ERR_USAGE);
  cr_assert_null(key);
  cr_assert(strstr(e.msg, "0644"), "%s", e.msg);
  cr_assert(strstr(e.msg, "chmod 600"), "%s", e.msg);
  cr_assert_null(strstr(e.msg, "sk-perm-test"), "the key leaked: %s", e.msg);
  /* The client refuses it too. */
  rt_llm_client *c = NULL;
  cr_assert_eq(rt_llm_client_new(&cfg, &cat, &c, &e), RT_ERR_USAGE);
  cr_assert_null(c);

  cr_assert_eq(chmod(path, 0640), 0);
  cr_assert_eq(rt_llm_read_key(&cfg, &key, &e), RT_ERR_USAGE);
  cr_assert(strstr(e.msg, "0640"), "%s", e.msg);

  cr_assert_eq(chmod(path, 0600), 0);
  cr_assert_eq(rt_llm_read_key(&cfg, &key, &e), RT_OK, "%s", e.msg);
  cr_assert_str_eq(key, "sk-perm-test-0123456789");
  free(key);

  write_file(path, "  \n", 0600);
  cr_assert_eq(rt_llm_read_key(&cfg, &key, &e), RT_ERR_USAGE);
  cr_assert(strstr(e.msg, "empty"), "%s", e.msg);
  write_file(path, "part1\npart2\n", 0600);
  cr_assert_eq(rt_llm_read_key(&cfg, &key, &e), RT_ERR_USAGE);
  cr_assert_null(strstr(e.msg, "part1"), "%s", e.msg);

  snprintf(spec, sizeof spec, "llm.api_key_file=%s/missing", tmpdir);
  set(spec);
  cr_assert_eq(rt_llm_read_key(&cfg, &key, &e), RT_ERR_USAGE);
  cr_assert(strstr(e.msg, "missing"), "%s", e.msg);
}

Test(request, key_env_and_redaction) {
  set("llm.api_key_env=RT_TEST_UNSET_KEY_VAR");
  unsetenv("RT_TEST_UNSET_KEY_VAR");
  char *key = NULL;
  rt_err e = {0};
  cr_assert_eq(rt_llm_read_key(&cfg, &key, &e), RT_ERR_USAGE);
  cr_assert(strstr(e.msg, "RT_TEST_UNSET_KEY_VAR"), "%s", e.msg);

  const char *secret = "sk-redact-me-9f8e7d6c5b4a";
  setenv("RT_TEST_KEY_VAR", secret, 1);
  set("llm.api_key_env=RT_TEST_KEY_VAR");
  cr_assert_eq(rt_llm_read_key(&cfg, &key, &e), RT_OK, "%s", e.msg);
  cr_assert_str_eq(key, secret);
  free(key);
  /* Registered: any error or log line that contains it prints [REDACTED]. */
  rt_err_set(&e, RT_ERR_ENDPOINT, "401 from http://x: key %s rejected", secret);
  cr_assert_null(strstr(e.msg, secret), "%s", e.msg);
  cr_assert_str_eq(e.msg, "401 from http://x: key [REDACTED] rejected");

  /* Both sources set: refused. */
  set("llm.api_key_file=/tmp/whatever");
  cr_assert_eq(rt_llm_read_key(&cfg, &key, &e), RT_ERR_USAGE);
  cr_assert(strstr(e.msg, "both"), "%s", e.msg);
  unsetenv("RT_TEST_KEY_VAR");
}

static int slist_has(struct curl_slist *l, const char *line) {
  for (; l; l = l->next)
    if (strcmp(l->data, line) == 0) return 1;
  return 0;
}

Test(request, headers) {
  struct curl_slist *h = NULL;
  rt_err e = {0};
  cr_assert_eq(rt_llm_build_headers(0, "sk-abc", "X-Team: ranking; OpenAI-Organization: org-1 ;; X-Empty:", &h, &e),
               RT_OK, "%s", e.msg);
  cr_assert(slist_has(h, "Authorization: Bearer sk-abc"));
  cr_assert(slist_has(h, "Content-Type: application/json"));
  cr_assert(slist_has(h, "Expect:"));
  cr_assert(slist_has(h, "X-Team: ranking"));
  cr_assert(slist_has(h, "OpenAI-Organization: org-1"));
  cr_assert(slist_has(h, "X-Empty;"));
  curl_slist_free_all(h);
  h = NULL;
  cr_assert_eq(rt_llm_build_headers(1, "gk-xyz", "", &h, &e), RT_OK);
  cr_assert(slist_has(h, "x-goog-api-key: gk-xyz"));
  cr_assert(!slist_has(h, "Authorization: Bearer gk-xyz"));
  curl_slist_free_all(h);
  h = NULL;
  cr_assert_eq(rt_llm_build_headers(0, NULL, "no colon here", &h, &e), RT_ERR_USAGE);
  cr_assert_null(h);
  cr_assert(strstr(e.msg, "entry 1") && strstr(e.msg, "Name: value"), "%s", e.msg);
  cr_assert_eq(rt_llm_build_headers(0, NULL, "Good: 1; Bad Name: 2", &h, &e), RT_ERR_USAGE);
  cr_assert(strstr(e.msg, "entry 2"), "%s", e.msg);
}

Test(request, request_key) {
  rt_llm_client *c = NULL;
  rt_err e = {0};
  set("llm.concurrency=2");
  cr_assert_eq(rt_llm_client_new(&cfg, &cat, &c, &e), RT_OK, "%s", e.msg);
  rt_llm_call a = {.system = "s", .user = "u1", .tag = 1};
  rt_llm_call a2 = {.system = "s", .user = "u1", .tag = 99};
  rt_llm_call b = {.system = "s", .user = "u2", .tag = 1};
  rt_llm_call d = {.system = NULL, .user = "u1", .tag = 1};
  uint64_t ka = rt_llm_request_key(c, &a);
  cr_assert_eq(ka, rt_llm_request_key(c, &a2), "the tag is not part of the request");
  cr_assert_neq(ka, rt_llm_request_key(c, &b));
  cr_assert_neq(ka, rt_llm_request_key(c, &d));
  rt_llm_client_free(c);
  /* Gemini puts the model in the URL, not the body: the key still differs. */
  set("llm.api=gemini");
  set("llm.model=m1");
  cr_assert_eq(rt_llm_client_new(&cfg, &cat, &c, &e), RT_OK, "%s", e.msg);
  uint64_t k1 = rt_llm_request_key(c, &a);
  rt_llm_client_free(c);
  set("llm.model=m2");
  cr_assert_eq(rt_llm_client_new(&cfg, &cat, &c, &e), RT_OK, "%s", e.msg);
  cr_assert_neq(k1, rt_llm_request_key(c, &a));
  cr_assert_str_eq(rt_llm_client_url(c), "http://127.0.0.1:8088/v1beta/models/m2:generateContent");
  rt_llm_client_free(c);
}

Test(request, run_of_zero_calls) {
  rt_llm_client *c = NULL;
  rt_err e = {0};
  set("llm.concurrency=1");
  cr_assert_eq(rt_llm_client_new(&cfg, &cat, &c, &e), RT_OK, "%s", e.msg);
  cr_assert_eq(rt_llm_run(c, NULL, 0, NULL, &e), RT_OK);
  cr_assert_eq(rt_llm_get_stats(c)->requests, 0);
  rt_llm_client_free(c);
}

Test(pacing, token_bucket) {
  rt_bucket b;
  rt_bucket_init(&b, 10.0, 5.0, 100.0); /* 10/s, burst 5, starts full */
  for (int i = 0; i < 5; i++) cr_assert_eq(rt_bucket_take(&b, 1, 100.0), 0.0);
  double w = rt_bucket_take(&b, 1, 100.0);
  cr_assert_float_eq(w, 0.1, 1e-9);
  cr_assert_eq(rt_bucket_take(&b, 1, 100.1), 0.0);
  /* Refill is capped at the capacity. */
  cr_assert_eq(rt_bucket_take(&b, 5, 200.0), 0.0);
  cr_assert_gt(rt_bucket_take(&b, 1, 200.0), 0.0);
  /* More than the capacity passes when full, leaving debt. */
  rt_bucket_init(&b, 10.0, 5.0, 0.0);
  cr_assert_eq(rt_bucket_take(&b, 8, 0.0), 0.0);
  cr_assert_float_eq(rt_bucket_take(&b, 1, 0.0), 0.4, 1e-9); /* level -3: 4 tokens short */
  /* rate 0: unlimited. */
  rt_bucket_init(&b, 0, 1, 0);
  for (int i = 0; i < 1000; i++) cr_assert_eq(rt_bucket_take(&b, 50, 0), 0.0);
  /* A larger share raises the rate without refilling. */
  rt_bucket_init(&b, 1.0, 1.0, 0.0);
  cr_assert_eq(rt_bucket_take(&b, 1, 0.0), 0.0);
  rt_bucket_set_rate(&b, 4.0, 2.0, 0.0);
  cr_assert_float_eq(rt_bucket_take(&b, 1, 0.0), 0.25, 1e-9);
}

Test(pacing, backoff_full_jitter_is_seeded) {
  rt_rng a = {42}, b = {42}, c = {43};
  double sa = 0, sc = 0;
  for (int retry = 1; retry <= 12; retry++) {
    double da = rt_backoff_s(retry, 0.1, 10.0, &a), db = rt_backoff_s(retry, 0.1, 10.0, &b);
    double dc = rt_backoff_s(retry, 0.1, 10.0, &c);
    cr_assert_eq(da, db, "same seed, same delays");
    double ceil_s = 0.1 * (double)(1u << (retry - 1));
    if (ceil_s > 10.0) ceil_s = 10.0;
    cr_assert(da >= 0 && da < ceil_s, "retry %d: %g not in [0, %g)", retry, da, ceil_s);
    sa += da;
    sc += dc;
  }
  cr_assert_neq(sa, sc, "another seed gives other delays");
  /* The mean over many draws is half the ceiling (full jitter). */
  rt_rng r = {7};
  double sum = 0;
  for (int i = 0; i < 20000; i++) sum += rt_backoff_s(3, 0.1, 10.0, &r);
  cr_assert_float_eq(sum / 20000, 0.2, 0.01);
}

Test(pacing, share_without_mpi_is_one_rank) {
  rt_share s;
  rt_share_init(&s);
  cr_assert_eq(s.nranks, 1);
  cr_assert_eq(s.nactive, 1);
  rt_share_set_active(&s, 0);
  cr_assert_eq(s.nactive, 0);
  rt_share_set_active(&s, 1);
  cr_assert_eq(s.nactive, 1);
  cr_assert_eq(rt_share_poll(&s, 1.0), 0);
  rt_share_free(&s);
}

Test(pacing, aimd_cuts_once_per_window_and_grows_while_limited) {
  rt_aimd a;
  rt_aimd_init(&a, 0, 0.0);
  cr_assert_eq(rt_aimd_effective(&a), 0.0, "no 429 yet: not limited");
  for (int i = 0; i < 50; i++) rt_aimd_accepted(&a, 0.55);
  cr_assert_eq(rt_aimd_accepted_last_s(&a, 1.0), 50);
  /* The first 429: 0.9 x the 50 accepted in the last second. */
  cr_assert_eq(rt_aimd_on_429(&a, 0.9, 1.0), RT_AIMD_CUT);
  cr_assert_float_eq(a.rate, 45.0, 1e-9);
  cr_assert_float_eq(rt_aimd_effective(&a), 45.0, 1e-9);
  /* 429s of requests sent before the cut do not cut again. */
  cr_assert_eq(rt_aimd_on_429(&a, 0.99, 1.01), RT_AIMD_KEEP);
  cr_assert_float_eq(a.rate, 45.0, 1e-9);
  /* Growth: only while the rate holds requests back, 5% of the rate per second. */
  cr_assert_eq(rt_aimd_tick(&a, 2.0), 0);
  cr_assert_float_eq(a.rate, 45.0, 1e-9);
  a.limited = 1;
  cr_assert_eq(rt_aimd_tick(&a, 2.05), 0, "less than 100 ms since the last tick");
  cr_assert_eq(rt_aimd_tick(&a, 3.0), 1);
  cr_assert_float_eq(a.rate, 45.0 * 1.05, 1e-9);
  /* A stalled loop counts as one second at most. */
  a.limited = 1;
  cr_assert_eq(rt_aimd_tick(&a, 13.0), 1);
  cr_assert_float_eq(a.rate, 45.0 * 1.05 * 1.05, 1e-9);
  /* The configured share caps both the pacing and the growth. */
  a.ceiling = 46;
  cr_assert_float_eq(rt_aimd_effective(&a), 46.0, 1e-9);
  a.limited = 1;
  rt_aimd_tick(&a, 14.0);
  cr_assert_float_eq(a.rate, 46.0, 1e-9);
  /* Nothing accepted in the last second: no cut, the caller pauses. */
  cr_assert_eq(rt_aimd_on_429(&a, 14.5, 15.0), RT_AIMD_NOTHING_ACCEPTED);
  cr_assert_float_eq(a.rate, 46.0, 1e-9);
  /* The cut is from the lower of the accepted rate and the current rate. */
  for (int i = 0; i < 1000; i++) rt_aimd_accepted(&a, 15.2);
  cr_assert_eq(rt_aimd_on_429(&a, 15.1, 15.3), RT_AIMD_CUT);
  cr_assert_float_eq(a.rate, 0.9 * 46.0, 1e-9);
  /* Old bins leave the window; the rate never goes below the floor. */
  cr_assert_eq(rt_aimd_accepted_last_s(&a, 16.3), 0);
  rt_aimd_accepted(&a, 16.4);
  cr_assert_eq(rt_aimd_on_429(&a, 16.4, 16.5), RT_AIMD_CUT);
  cr_assert_float_eq(a.rate, RT_AIMD_MIN_RATE, 1e-9);
}

Test(pacing, aimd_converges_below_a_simulated_limit) {
  /* A fluid model of an endpoint with a 429 bucket of R/s (burst R) and a
   * client pacing at the AIMD rate, in 1 ms steps over 60 s: after 10 s the
   * client gets at least 0.95 R through, fewer than 1% of its sends are
   * refused and its rate stays within [0.8 R, 1.25 R]. Deterministic: no clock, no sockets. */
  const double R = 2000, dt = 0.001;
  rt_aimd a;
  rt_aimd_init(&a, 0, 0.0);
  double ep = R, credit = 0; /* endpoint bucket; client send credit */
  long sent = 0, refused = 0, sent_late = 0, refused_late = 0, cuts = 0;
  double min_rate = 1e9, max_rate = 0;
  for (long k = 1; k <= 60000; k++) {
    double t = k * dt;
    ep = fmin(R, ep + R * dt);
    double rate = rt_aimd_effective(&a);
    credit += (rate > 0 ? rate : 20000) * dt; /* unlimited: 20k/s of offered load */
    if (rate > 0) credit = fmin(credit, rate * 0.5);
    int limited = 0;
    while (credit >= 1) {
      credit -= 1;
      sent++;
      if (t > 10) sent_late++;
      if (ep >= 1) {
        ep -= 1;
        rt_aimd_accepted(&a, t);
      } else {
        refused++;
        if (t > 10) refused_late++;
        if (rt_aimd_on_429(&a, t - 0.002, t) == RT_AIMD_CUT) {
          cuts++;
          credit = 0;
        }
      }
    }
    if (rate > 0 && credit < 1) limited = 1;
    a.limited |= limited;
    rt_aimd_tick(&a, t);
    if (t > 10) {
      min_rate = fmin(min_rate, rt_aimd_effective(&a));
      max_rate = fmax(max_rate, rt_aimd_effective(&a));
    }
  }
  cr_assert_geq(cuts, 1);
  /* The endpoint's burst (R tokens saved while the client was below R) lets
   * the rate overshoot R until it is spent; the cuts then bring it back. */
  cr_assert(min_rate >= 0.8 * R && max_rate <= 1.25 * R, "rate in [%g, %g]", min_rate, max_rate);
  cr_assert_lt((double)refused_late, 0.01 * (double)sent_late, "%ld of %ld refused after 10 s", refused_late,
               sent_late);
  cr_assert_gt((double)(sent_late - refused_late), 0.95 * R * 50, "accepted %ld in 50 s", sent_late - refused_late);
}

/* The enum a body allows, whichever api: openai json_schema, guided_choice, gemini. */
static json_t *enum_of(json_t *b) {
  json_t *e = json_object_get(b, "guided_choice");
  if (e) return e;
  json_t *rf = json_object_get(b, "response_format");
  if (rf) return json_object_get(json_object_get(json_object_get(json_object_get(json_object_get(
                                     rf, "json_schema"), "schema"), "properties"), "cluster"), "enum");
  return json_object_get(json_object_get(json_object_get(b, "generationConfig"), "responseSchema"), "enum");
}

static void pair_enum_excludes(const char *api, const char *constrain) {
  char kv[100];
  snprintf(kv, sizeof kv, "llm.api=%s", api);
  set(kv);
  snprintf(kv, sizeof kv, "llm.constrain=%s", constrain);
  set(kv);
  rt_llm_reqfmt f;
  rt_err e = {0};
  cr_assert_eq(rt_llm_reqfmt_init(&f, &cfg, &cat, &e), RT_OK, "%s", e.msg);
  for (uint32_t c1 = 0; c1 < 4; c1++)
    for (uint32_t c2 = 0; c2 < 4; c2++) {
      uint32_t ex[2] = {c1, c2};
      size_t len;
      char *b = rt_llm_build_body_ex(&f, "sys", "user", 5, ex, 2, &len);
      json_t *j = json_loads(b, 0, NULL);
      cr_assert_not_null(j, "%s/%s: body is not JSON: %s", api, constrain, b);
      json_t *en = enum_of(j);
      cr_assert(json_is_array(en), "%s/%s: no enum in %s", api, constrain, b);
      size_t want = c1 == c2 ? 3 : 2;
      cr_assert_eq(json_array_size(en), want, "%s/%s (%u, %u): %s", api, constrain, c1, c2, b);
      size_t k = 0;
      for (uint32_t i = 0; i < 4; i++) {
        if (i == c1 || i == c2) continue;
        cr_assert_str_eq(json_string_value(json_array_get(en, k)), DESCS[i]);
        k++;
      }
      json_decref(j);
      free(b);
    }
  /* No exclusion: the whole catalog, and the same bytes as rt_llm_build_body. */
  size_t l1, l2;
  char *a = rt_llm_build_body_ex(&f, NULL, "u", 0, NULL, 0, &l1);
  char *b = rt_llm_build_body(&f, NULL, "u", 0, &l2);
  cr_assert(l1 == l2 && memcmp(a, b, l1) == 0);
  json_t *j = json_loads(a, 0, NULL);
  assert_enum(enum_of(j));
  json_decref(j);
  free(a);
  free(b);
  rt_llm_reqfmt_free(&f);
}

Test(request, pair_enum_leaves_out_c1_and_c2) {
  pair_enum_excludes("openai", "json_schema");
  pair_enum_excludes("openai", "guided_choice");
  pair_enum_excludes("gemini", "json_schema");
}

Test(request, constrain_off_ignores_exclusions) {
  rt_llm_reqfmt f;
  rt_err e = {0};
  cr_assert_eq(rt_llm_reqfmt_init(&f, &cfg, &cat, &e), RT_OK, "%s", e.msg);
  uint32_t ex[2] = {0, 1};
  size_t l1, l2;
  char *a = rt_llm_build_body_ex(&f, NULL, "u", 0, ex, 2, &l1);
  char *b = rt_llm_build_body(&f, NULL, "u", 0, &l2);
  cr_assert(l1 == l2 && memcmp(a, b, l1) == 0);
  free(a);
  free(b);
  rt_llm_reqfmt_free(&f);
}

Test(request, request_key_changes_with_the_pair) {
  set("llm.constrain=json_schema");
  rt_llm_client *c;
  rt_err e = {0};
  cr_assert_eq(rt_llm_client_new(&cfg, &cat, &c, &e), RT_OK, "%s", e.msg);
  rt_llm_call a = {NULL, "same prompt", 1, 2, {0, 1}}, b = {NULL, "same prompt", 1, 2, {0, 2}},
              a2 = {NULL, "same prompt", 7, 2, {1, 0}};
  cr_assert_neq(rt_llm_request_key(c, &a), rt_llm_request_key(c, &b));
  cr_assert_eq(rt_llm_request_key(c, &a), rt_llm_request_key(c, &a2)); /* order and tag do not matter */
  rt_llm_client_free(c);
}

Test(request, go_durations_and_retry_info) {
  cr_assert_float_eq(rt_parse_duration("12ms"), 0.012, 1e-12);
  cr_assert_float_eq(rt_parse_duration("1.5s"), 1.5, 1e-12);
  cr_assert_float_eq(rt_parse_duration("6m0s"), 360, 1e-9);
  cr_assert_float_eq(rt_parse_duration("1h2m3.5s"), 3723.5, 1e-9);
  cr_assert_float_eq(rt_parse_duration("250us"), 250e-6, 1e-12);
  cr_assert_float_eq(rt_parse_duration("7"), 7, 1e-12);
  cr_assert_float_eq(rt_parse_duration(" 20ms"), 0.02, 1e-12);
  cr_assert_eq(rt_parse_duration("soon"), -1);
  cr_assert_eq(rt_parse_duration("1m30"), -1);
  cr_assert_eq(rt_parse_duration(""), -1);
  cr_assert_eq(rt_parse_duration("-1s"), -1);
  const char *g = "{\"error\":{\"code\":429,\"message\":\"quota\",\"status\":\"RESOURCE_EXHAUSTED\",\"details\":["
                  "{\"@type\":\"type.googleapis.com/google.rpc.QuotaFailure\",\"violations\":[]},"
                  "{\"@type\": \"type.googleapis.com/google.rpc.RetryInfo\", \"retryDelay\": \"13s\"}]}}";
  cr_assert_float_eq(rt_retryinfo_delay(g, strlen(g)), 13, 1e-12);
  const char *g2 = "{\"details\":[{\"retryDelay\":\"0.5s\",\"@type\":\"type.googleapis.com/google.rpc.RetryInfo\"}]}";
  cr_assert_float_eq(rt_retryinfo_delay(g2, strlen(g2)), 0.5, 1e-12);
  const char *busy = "{\"error\":{\"code\":429,\"message\":\"Resource exhausted\",\"status\":\"RESOURCE_EXHAUSTED\"}}";
  cr_assert_eq(rt_retryinfo_delay(busy, strlen(busy)), -1);
  cr_assert_eq(rt_retryinfo_delay(NULL, 0), -1);
}

Test(request, sporadic_429s_are_no_evidence_a_limit_is) {
  rt_win429 w;
  rt_win429_init(&w, 100.0);
  /* 20% 429s at 500 responses/s for 4 s: never evidence, unlimited or not
   * (the floor of the closed windows is 20%). */
  double t = 100.0;
  for (int i = 0; i < 2000; i++, t += 0.002) {
    rt_win429_add(&w, t, i % 5 == 0);
    cr_assert_eq(rt_win429_evidence(&w, t, 0, 128, 2.0), 0, "at %d", i);
  }
  cr_assert_float_eq(rt_win429_floor(&w), 0.2, 0.01);
  cr_assert_eq(rt_win429_evidence(&w, t, 1, 128, 2.0), 0);
  /* The share climbs to 60%: evidence in both modes. */
  for (int i = 0; i < 1000; i++, t += 0.002) rt_win429_add(&w, t, i % 5 < 3);
  cr_assert_eq(rt_win429_evidence(&w, t, 0, 128, 2.0), 1);
  cr_assert_eq(rt_win429_evidence(&w, t, 1, 128, 2.0), 1);
  /* Too few responses: no evidence, whatever the share. */
  rt_win429 w2;
  rt_win429_init(&w2, 0.0);
  for (int i = 0; i < 20; i++) rt_win429_add(&w2, 0.01 * i, 1);
  cr_assert_eq(rt_win429_evidence(&w2, 0.2, 0, 128, 2.0), 0);
  cr_assert_eq(rt_win429_evidence(&w2, 0.2, 0, 16, 2.0), 1); /* 100%: a clear majority counts at once */
  /* Before the responses settle only a majority counts: 35% of 1000 is not yet evidence, later it is. */
  rt_win429 w5;
  rt_win429_init(&w5, 0.0);
  for (int i = 0; i < 1000; i++) rt_win429_add(&w5, 0.001 * i, i % 20 < 7);
  cr_assert_eq(rt_win429_evidence(&w5, 1.0, 0, 128, 2.0), 0);
  cr_assert_eq(rt_win429_evidence(&w5, 1.0, 0, 128, 0.5), 1);
  /* 200 responses: 30% is within two standard errors of 25%, 40% is not. */
  rt_win429 w3;
  rt_win429_init(&w3, 0.0);
  for (int i = 0; i < 200; i++) rt_win429_add(&w3, 0.001 * i, i % 10 < 3);
  cr_assert_eq(rt_win429_evidence(&w3, 0.2, 0, 128, 0.0), 0);
  rt_win429_init(&w3, 0.0);
  for (int i = 0; i < 200; i++) rt_win429_add(&w3, 0.001 * i, i % 10 < 4);
  cr_assert_eq(rt_win429_evidence(&w3, 0.2, 0, 128, 0.0), 1);
  /* A limited rank with no sporadic floor (0%): any 429 is evidence. */
  rt_win429 w4;
  rt_win429_init(&w4, 0.0);
  t = 0;
  for (int i = 0; i < 1500; i++, t += 0.002) rt_win429_add(&w4, t, 0);
  rt_win429_add(&w4, t, 1);
  cr_assert_float_eq(rt_win429_floor(&w4), 0, 1e-12);
  cr_assert_eq(rt_win429_evidence(&w4, t, 1, 128, 2.0), 1);
  cr_assert_eq(rt_win429_evidence(&w4, t, 0, 128, 2.0), 0);
}

Test(request, latency_histogram_buckets_and_quantiles) {
  cr_assert_eq(rt_llm_latency_bucket(0.5), 0);
  cr_assert_eq(rt_llm_latency_bucket(1.0), 1);
  cr_assert_eq(rt_llm_latency_bucket(2.0), 5);
  cr_assert_eq(rt_llm_latency_bucket(1e9), RT_LLM_LAT_BUCKETS - 1);
  for (int k = 1; k < RT_LLM_LAT_BUCKETS - 1; k++) {
    double up = rt_llm_latency_bucket_upper_ms(k);
    cr_assert_eq(rt_llm_latency_bucket(up * 0.999), k, "bucket %d", k);
    cr_assert_eq(rt_llm_latency_bucket(up * 1.001), k + 1, "bucket %d", k);
  }
  uint64_t b[RT_LLM_LAT_BUCKETS] = {0}, b2[RT_LLM_LAT_BUCKETS] = {0};
  cr_assert_eq(rt_llm_latency_quantile(b, 0.5), 0);
  /* 90 answers at 50 ms, 10 at 400 ms, split over two "ranks" and merged. */
  for (int i = 0; i < 90; i++) (i % 2 ? b : b2)[rt_llm_latency_bucket(50)]++;
  for (int i = 0; i < 10; i++) (i % 2 ? b : b2)[rt_llm_latency_bucket(400)]++;
  for (int k = 0; k < RT_LLM_LAT_BUCKETS; k++) b[k] += b2[k];
  double p50 = rt_llm_latency_quantile(b, 0.5), p95 = rt_llm_latency_quantile(b, 0.95);
  cr_assert(p50 >= 50 && p50 < 50 * 1.19, "p50 %g", p50);
  cr_assert(p95 >= 400 && p95 < 400 * 1.19, "p95 %g", p95);
  cr_assert_float_eq(rt_llm_latency_quantile(b, 0.9), p50, 1e-9);
}
