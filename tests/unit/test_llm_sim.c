/* test_llm_sim.c — the simulated model and fault plan of ragtide-llm-sim,
 * without HTTP: answer.c and faults.c are compiled into this test directly
 * (the sim is an executable, not a library). tests/scripts/llm_sim.sh covers
 * the HTTP side. */
#include <criterion/criterion.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../../tools/llm-sim/answer.c"
#include "../../tools/llm-sim/faults.c"

static const uint32_t k_ids[] = {10, 20, 30, 40, 50, 60, 70};
static const char *const k_desc[] = {
  "jazz, blues", "rock, guitar, live", "cooking, baking", "soccer, highlights",
  "Sci-Fi, space opera", "cats, funny", "r&b; soul | motown",
};
#define NCAT 7

static sim_ctx g_ctx;

static void setup(void) {
  memset(&g_ctx, 0, sizeof g_ctx);
  rt_err err = {0};
  cr_assert_eq(rt_catalog_build(k_ids, k_desc, NCAT, "test", &g_ctx.cat, &err), RT_OK, "%s", err.msg);
  sim_index_build(&g_ctx.idx, &g_ctx.cat);
  g_ctx.opt.follow = 0.8;
  g_ctx.opt.seed = 42;
}

static void teardown(void) {
  sim_index_free(&g_ctx.idx);
  rt_catalog_free(&g_ctx.cat);
}

static char *norm_of(const char *s) {
  size_t need = rt_normalize_desc(s, NULL, 0);
  char *n = malloc(need + 1);
  rt_normalize_desc(s, n, need + 1);
  return n;
}

/* Build an OpenAI chat request for a user prompt, plus optional JSON fields. */
static void chat(sim_request *rq, const char *prompt, const char *extra) {
  json_t *b = json_pack("{s:s, s:[{s:s, s:s}]}", "model", "m", "messages", "role", "user", "content", prompt);
  if (extra) {
    json_t *e = json_loads(extra, 0, NULL);
    cr_assert(e, "bad extra JSON in test");
    json_object_update(b, e);
    json_decref(e);
  }
  char *s = json_dumps(b, 0);
  json_decref(b);
  char why[256];
  cr_assert_eq(sim_parse_request(SIM_API_OPENAI, s, strlen(s), rq, why, sizeof why), 0, "%s", why);
  free(s);
}

static char *content_of(const sim_outcome *o) {
  json_t *j = json_loadb(o->body, o->body_len, 0, NULL);
  cr_assert(j, "response is not JSON: %s", o->body);
  const char *c = json_string_value(json_object_get(
      json_object_get(json_array_get(json_object_get(j, "choices"), 0), "message"), "content"));
  cr_assert(c);
  char *r = strdup(c);
  json_decref(j);
  return r;
}

TestSuite(llm_sim, .init = setup, .fini = teardown);

Test(llm_sim, named_clusters_by_whole_normalised_lines) {
  const char *p = "History:\n  JAZZ ,blues.\nnot a cluster\nrock guitar live? no\nLive, ROCK, guitar\n"
                  "cats, funny and more\nsoul; motown, R&B\n";
  int32_t out[8];
  size_t n = sim_named_clusters(&g_ctx.idx, p, strlen(p), out, 8);
  cr_assert_eq(n, 3);
  cr_assert_eq(out[0], 0); /* jazz, blues */
  cr_assert_eq(out[1], 1); /* rock, guitar, live */
  cr_assert_eq(out[2], 6); /* r&b; soul | motown */
  cr_assert_eq(sim_named_clusters(&g_ctx.idx, p, strlen(p), out, 2), 2);
}

Test(llm_sim, follow_one_answers_the_retrieved_cluster) {
  g_ctx.opt.follow = 1;
  sim_request rq;
  chat(&rq, "jazz, blues\nrock, guitar, live\ncats, funny\nanswer", NULL);
  cr_assert_eq(sim_pick(&g_ctx, &rq), 5);
  sim_outcome o;
  sim_respond(&g_ctx, &rq, 0, &o);
  cr_assert_eq(o.kind, SIM_OUT_ANSWER);
  cr_assert_str_eq(o.content, "cats, funny");
  char *c = content_of(&o);
  cr_assert_str_eq(c, "cats, funny");
  free(c);
  sim_outcome_free(&o);
  sim_request_free(&rq);
}

Test(llm_sim, hash_choice_excludes_the_pair_and_covers_the_rest) {
  g_ctx.opt.follow = 0;
  int seen[NCAT] = {0};
  char p[128];
  for (int i = 0; i < 400; i++) {
    snprintf(p, sizeof p, "prompt %d\nsci-fi, space opera\ncooking, baking\njazz, blues", i);
    sim_request rq;
    chat(&rq, p, NULL);
    int32_t k = sim_pick(&g_ctx, &rq);
    cr_assert(k >= 0 && k < NCAT);
    seen[k]++;
    cr_assert_eq(sim_pick(&g_ctx, &rq), k, "same prompt, same pick");
    sim_request_free(&rq);
  }
  cr_assert_eq(seen[4], 0, "c1 (sci-fi) must never be answered");
  cr_assert_eq(seen[2], 0, "c2 (cooking) must never be answered");
  for (int k = 0; k < NCAT; k++)
    if (k != 2 && k != 4) cr_assert_gt(seen[k], 40, "cluster %d picked %d/400 times", k, seen[k]);
}

Test(llm_sim, follow_fraction_matches_the_flag) {
  g_ctx.opt.follow = 0.8;
  int followed = 0;
  char p[128];
  for (int i = 0; i < 2000; i++) {
    snprintf(p, sizeof p, "u%d\njazz, blues\nrock, guitar, live\ncats, funny", i);
    sim_request rq;
    chat(&rq, p, NULL);
    followed += sim_pick(&g_ctx, &rq) == 5;
    sim_request_free(&rq);
  }
  /* 0.8 plus the hash choice landing on cats (0.2 * 1/5); binomial sd ~ 9 */
  cr_assert(followed > 1640 && followed < 1720, "followed %d of 2000", followed);
}

Test(llm_sim, seeds_change_the_hash_choice) {
  g_ctx.opt.follow = 0;
  int differ = 0;
  char p[64];
  for (int i = 0; i < 50; i++) {
    snprintf(p, sizeof p, "pair %d", i);
    sim_request rq;
    chat(&rq, p, NULL);
    g_ctx.opt.seed = 1;
    int32_t a = sim_pick(&g_ctx, &rq);
    g_ctx.opt.seed = 2;
    differ += sim_pick(&g_ctx, &rq) != a;
    sim_request_free(&rq);
  }
  cr_assert_gt(differ, 25, "only %d of 50 picks changed with the seed", differ);
}

Test(llm_sim, noisy_text_normalises_back_and_differs) {
  for (uint32_t c = 0; c < NCAT; c++) {
    for (uint64_t r = 0; r < 300; r++) {
      char *t = sim_noisy_text(g_ctx.cat.desc[c], g_ctx.cat.norm[c], rt_mix64(r));
      char *n = norm_of(t);
      cr_assert_str_eq(n, g_ctx.cat.norm[c], "noise \"%s\" of \"%s\"", t, g_ctx.cat.desc[c]);
      cr_assert_str_neq(t, g_ctx.cat.desc[c]);
      free(n);
      free(t);
    }
  }
}

Test(llm_sim, off_catalog_text_is_in_no_cluster) {
  for (int32_t c = -1; c < NCAT; c++) {
    for (uint64_t r = 0; r < 200; r++) {
      char *t = sim_off_catalog_text(&g_ctx.idx, c, rt_mix64(r + 7));
      char *n = norm_of(t);
      cr_assert_eq(sim_index_find(&g_ctx.idx, n), -1, "\"%s\" is in the catalog", t);
      free(n);
      free(t);
    }
  }
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

Test(llm_sim, lognormal_has_the_requested_mean_and_p99) {
  sim_opts o = {0};
  char why[256];
  o.latency_lognormal = 1;
  o.latency_ms = 20;
  o.latency_p99_ms = 100;
  cr_assert_eq(sim_lognormal_params(20, 100, &o.ln_mu, &o.ln_sigma, why, sizeof why), 0, "%s", why);
  enum { N = 200000 };
  double *v = malloc(N * sizeof *v), sum = 0;
  for (int i = 0; i < N; i++) sum += v[i] = sim_latency_ms(&o, 12345, (uint64_t)i);
  qsort(v, N, sizeof *v, cmp_double);
  double mean = sum / N, p99 = v[(size_t)(0.99 * N)];
  cr_assert(fabs(mean - 20) < 0.6, "mean %.2f ms", mean);
  cr_assert(fabs(p99 - 100) < 5, "p99 %.2f ms", p99);
  free(v);
  cr_assert_eq(sim_lognormal_params(20, 20, &o.ln_mu, &o.ln_sigma, why, sizeof why), -1);
  cr_assert_eq(sim_lognormal_params(10, 1000, &o.ln_mu, &o.ln_sigma, why, sizeof why), -1);
  cr_assert(strstr(why, "at most"), "%s", why);
}

Test(llm_sim, prompt_counts_count_per_prompt) {
  sim_counts c = {0};
  cr_assert_eq(sim_counts_next(&c, 99), 0);
  cr_assert_eq(sim_counts_next(&c, 99), 1);
  cr_assert_eq(sim_counts_next(&c, 0), 0);
  for (uint64_t k = 1000; k < 21000; k++) cr_assert_eq(sim_counts_next(&c, k), 0);
  cr_assert_eq(sim_counts_next(&c, 99), 2);
  cr_assert_eq(sim_counts_next(&c, 20999), 1);
  cr_assert_eq(c.len, 20002);
  sim_counts_free(&c);
}

Test(llm_sim, token_bucket_limits_and_says_when_to_retry) {
  sim_bucket b;
  sim_bucket_init(&b, 5, 5, 100.0);
  for (int i = 0; i < 5; i++) cr_assert_eq(sim_bucket_take(&b, 100.0), 0);
  cr_assert_eq(sim_bucket_take(&b, 100.0), 1);
  cr_assert_eq(sim_bucket_take(&b, 100.1), 1);
  cr_assert_eq(sim_bucket_take(&b, 100.25), 0, "0.25 s refills 1.25 tokens");
  sim_bucket_init(&b, 0.1, 0.1, 0);
  cr_assert_eq(sim_bucket_take(&b, 0), 0);
  cr_assert_eq(sim_bucket_take(&b, 0), 10, "0.1 rps: the next token in 10 s");
  sim_bucket_init(&b, 0, 0, 0);
  for (int i = 0; i < 1000; i++) cr_assert_eq(sim_bucket_take(&b, 0), 0, "rps 0 is unlimited");
  /* --tpm 60000: 1000 tokens/s, burst 1000; requests cost their tokens */
  sim_bucket_init(&b, 1000, 1000, 50.0);
  cr_assert_eq(sim_bucket_take_n(&b, 600, 50.0), 0);
  cr_assert_eq(sim_bucket_take_n(&b, 600, 50.0), 1, "400 left of 600: 0.2 s, rounded up to 1 s");
  cr_assert_eq(sim_bucket_take_n(&b, 600, 50.2), 0, "0.2 s refilled 200");
  cr_assert_eq(sim_bucket_take_n(&b, 5000, 51.2), 0, "a cost over the burst takes a full bucket");
  cr_assert_float_eq(b.tokens, 0, 1e-9);
}

Test(llm_sim, fault_rates_and_retries_get_fresh_draws) {
  g_ctx.opt.fail500 = 0.3;
  sim_request rq;
  chat(&rq, "jazz, blues\nrock, guitar, live", NULL);
  int n500 = 0;
  for (uint64_t n = 0; n < 10000; n++) {
    sim_outcome o, o2;
    sim_respond(&g_ctx, &rq, n, &o);
    sim_respond(&g_ctx, &rq, n, &o2);
    cr_assert_eq(o.kind, o2.kind, "same (seed, prompt, n), same outcome");
    cr_assert_eq(o.status, o2.status);
    n500 += o.kind == SIM_OUT_500;
    if (o.kind == SIM_OUT_500) cr_assert_eq(o.status, 500);
    sim_outcome_free(&o);
    sim_outcome_free(&o2);
  }
  cr_assert(n500 > 2850 && n500 < 3150, "%d of 10000 were 500", n500);
  sim_request_free(&rq);
}

Test(llm_sim, fault_order_reset_first_then_hang_then_errors) {
  sim_request rq;
  chat(&rq, "x", NULL);
  sim_outcome o;
  g_ctx.opt.reset = 1;
  g_ctx.opt.hang = 1;
  g_ctx.opt.fail500 = 1;
  sim_respond(&g_ctx, &rq, 0, &o);
  cr_assert_eq(o.kind, SIM_OUT_RESET);
  cr_assert_null(o.body);
  g_ctx.opt.reset = 0;
  sim_respond(&g_ctx, &rq, 0, &o);
  cr_assert_eq(o.kind, SIM_OUT_HANG);
  g_ctx.opt.hang = 0;
  g_ctx.opt.fail503 = 1;
  sim_respond(&g_ctx, &rq, 0, &o);
  cr_assert_eq(o.status, 500);
  sim_outcome_free(&o);
  g_ctx.opt.fail500 = 0;
  sim_respond(&g_ctx, &rq, 0, &o);
  cr_assert_eq(o.status, 503);
  json_t *j = json_loadb(o.body, o.body_len, 0, NULL);
  cr_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "error"), "type")), "server_error");
  json_decref(j);
  sim_outcome_free(&o);
  g_ctx.opt.fail503 = 0;
  g_ctx.opt.malformed = 1;
  sim_respond(&g_ctx, &rq, 0, &o);
  cr_assert_eq(o.kind, SIM_OUT_MALFORMED);
  cr_assert_eq(o.status, 200);
  cr_assert_null(json_loadb(o.body, o.body_len, 0, NULL), "malformed body parsed: %.*s", (int)o.body_len,
                 o.body);
  sim_outcome_free(&o);
  sim_request_free(&rq);
}

Test(llm_sim, constrained_output_is_an_enum_value_and_immune_to_noise) {
  g_ctx.opt.follow = 1;
  g_ctx.opt.noise = 1;
  g_ctx.opt.off_catalog = 1;
  const char *p = "jazz, blues\nrock, guitar, live\ncats, funny";
  sim_request rq;
  sim_outcome o;
  chat(&rq, p, "{\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"n\",\"strict\":true,"
               "\"schema\":{\"type\":\"object\",\"properties\":{\"cluster\":{\"type\":\"string\",\"enum\":"
               "[\"jazz, blues\",\"cats, funny\"]}},\"required\":[\"cluster\"],\"additionalProperties\":false}}}}");
  cr_assert_eq(rq.fmt, SIM_FMT_JSON_ENUM);
  sim_respond(&g_ctx, &rq, 0, &o);
  cr_assert_eq(o.kind, SIM_OUT_ANSWER);
  cr_assert_str_eq(o.content, "{\"cluster\":\"cats, funny\"}");
  sim_outcome_free(&o);
  sim_request_free(&rq);
  /* the pick is not in the enum: some enum value, chosen by hash */
  chat(&rq, p, "{\"guided_choice\":[\"soccer, highlights\",\"cooking, baking\"]}");
  sim_respond(&g_ctx, &rq, 0, &o);
  cr_assert(strcmp(o.content, "soccer, highlights") == 0 || strcmp(o.content, "cooking, baking") == 0,
            "%s", o.content);
  sim_outcome_free(&o);
  sim_request_free(&rq);
  /* enum written in another form: the equal normalised value is chosen */
  chat(&rq, p, "{\"guided_choice\":[\"Funny, CATS\",\"jazz, blues\"]}");
  sim_respond(&g_ctx, &rq, 0, &o);
  cr_assert_str_eq(o.content, "Funny, CATS");
  sim_outcome_free(&o);
  sim_request_free(&rq);
  /* unconstrained: off-catalog comes before noise */
  chat(&rq, p, NULL);
  sim_respond(&g_ctx, &rq, 0, &o);
  cr_assert_eq(o.kind, SIM_OUT_OFF_CATALOG);
  sim_outcome_free(&o);
  g_ctx.opt.off_catalog = 0;
  sim_respond(&g_ctx, &rq, 0, &o);
  cr_assert_eq(o.kind, SIM_OUT_NOISY);
  char *n = norm_of(o.content);
  cr_assert_str_eq(n, "cats, funny");
  free(n);
  sim_outcome_free(&o);
  sim_request_free(&rq);
}

Test(llm_sim, gemini_request_and_response_shape) {
  const char *body =
      "{\"systemInstruction\":{\"parts\":[{\"text\":\"sys\"}]},\"contents\":[{\"role\":\"user\",\"parts\":"
      "[{\"text\":\"jazz, blues\\nrock, guitar, live\\ncats, funny\"}]}],\"generationConfig\":{"
      "\"responseMimeType\":\"text/x.enum\",\"responseSchema\":{\"type\":\"STRING\",\"enum\":"
      "[\"cats, funny\",\"jazz, blues\"]}}}";
  sim_request rq;
  char why[256];
  cr_assert_eq(sim_parse_request(SIM_API_GEMINI, body, strlen(body), &rq, why, sizeof why), 0, "%s", why);
  cr_assert_eq(rq.fmt, SIM_FMT_ENUM);
  cr_assert_eq(rq.content_bytes, 3 + 42); /* "sys" + the three lines and two newlines */
  cr_assert_str_eq(rq.prompt, "sys\njazz, blues\nrock, guitar, live\ncats, funny");
  g_ctx.opt.follow = 1;
  sim_outcome o;
  sim_respond(&g_ctx, &rq, 0, &o);
  json_t *j = json_loadb(o.body, o.body_len, 0, NULL);
  cr_assert(j);
  json_t *cand = json_array_get(json_object_get(j, "candidates"), 0);
  cr_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(
                       json_object_get(cand, "content"), "parts"), 0), "text")), "cats, funny");
  cr_assert_str_eq(json_string_value(json_object_get(cand, "finishReason")), "STOP");
  json_t *u = json_object_get(j, "usageMetadata");
  cr_assert_eq(json_integer_value(json_object_get(u, "promptTokenCount")), 12); /* ceil(45/4) */
  cr_assert_eq(json_integer_value(json_object_get(u, "candidatesTokenCount")), 3);
  cr_assert_eq(json_integer_value(json_object_get(u, "totalTokenCount")), 15);
  cr_assert_str_eq(json_string_value(json_object_get(j, "modelVersion")), SIM_MODEL_NAME);
  json_decref(j);
  sim_outcome_free(&o);
  sim_request_free(&rq);
}

Test(llm_sim, bad_requests_are_rejected_with_a_reason) {
  static const char *bad[][2] = {
    {"{\"model\":\"m\",\"messages\":[", "not valid JSON"},
    {"[1,2]", "JSON object"},
    {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", "model"},
    {"{\"model\":\"m\",\"messages\":[]}", "non-empty array"},
    {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":5}]}", "content"},
    {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"guided_choice\":[]}",
     "guided_choice"},
    {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"guided_choice\":[1]}",
     "not a string"},
    {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"response_format\":"
     "{\"type\":\"json_schema\",\"json_schema\":{\"schema\":{}}}}", "cluster.enum"},
    {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"response_format\":"
     "{\"type\":\"json_object\"},\"guided_choice\":[\"a\"]}", "not both"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    sim_request rq;
    char why[256] = "";
    cr_assert_eq(sim_parse_request(SIM_API_OPENAI, bad[i][0], strlen(bad[i][0]), &rq, why, sizeof why), -1,
                 "accepted %s", bad[i][0]);
    cr_assert(strstr(why, bad[i][1]), "reason for %s is \"%s\"", bad[i][0], why);
    cr_assert_null(rq.root);
  }
  sim_request rq;
  char why[256] = "";
  const char *g = "{\"contents\":[{\"parts\":[{\"text\":\"x\"}]}],\"generationConfig\":{\"responseMimeType\":"
                  "\"text/x.enum\"}}";
  cr_assert_eq(sim_parse_request(SIM_API_GEMINI, g, strlen(g), &rq, why, sizeof why), -1);
  cr_assert(strstr(why, "responseSchema.enum"), "%s", why);
}

Test(llm_sim, sporadic_429_502_504_rates_order_and_shapes) {
  g_ctx.opt.fail429 = 0.2;
  g_ctx.opt.fail502 = 0.1;
  g_ctx.opt.fail504 = 0.1;
  g_ctx.opt.latency_ms = 50;
  sim_request rq;
  chat(&rq, "jazz, blues\nrock, guitar, live", NULL);
  int n429 = 0, n502 = 0, n504 = 0;
  for (uint64_t n = 0; n < 10000; n++) {
    sim_outcome o;
    sim_respond(&g_ctx, &rq, n, &o);
    if (o.kind == SIM_OUT_429) {
      n429++;
      cr_assert_eq(o.status, 429);
      cr_assert_eq(o.delay_ms, 0, "a 429 is a rejection: answered at once");
      cr_assert(strstr(o.body, "rate_limit_error") && strstr(o.body, "--fail-429"), "%s", o.body);
    } else if (o.kind == SIM_OUT_502) {
      n502++;
      cr_assert_eq(o.status, 502);
      cr_assert_eq(o.delay_ms, 50);
    } else if (o.kind == SIM_OUT_504) {
      n504++;
      cr_assert_eq(o.status, 504);
    }
    sim_outcome_free(&o);
  }
  /* 429 first (0.2), then 502 of the rest (0.8 x 0.1), then 504 (0.72 x 0.1). */
  cr_assert(n429 > 1850 && n429 < 2150, "%d 429s", n429);
  cr_assert(n502 > 700 && n502 < 900, "%d 502s", n502);
  cr_assert(n504 > 630 && n504 < 810, "%d 504s", n504);
  sim_request_free(&rq);
}

Test(llm_sim, new_faults_do_not_move_the_old_draws) {
  /* --fail-500 alone gives the same outcomes with the new fault flags at 0. */
  g_ctx.opt.fail500 = 0.3;
  sim_request rq;
  chat(&rq, "cats, funny", NULL);
  int n500 = 0;
  for (uint64_t n = 0; n < 2000; n++) {
    sim_outcome o;
    sim_respond(&g_ctx, &rq, n, &o);
    int want = sim_draw_unit(g_ctx.opt.seed, rq.prompt_hash, n, SIM_D_500) < 0.3;
    cr_assert_eq(o.kind == SIM_OUT_500, want);
    n500 += want;
    sim_outcome_free(&o);
  }
  cr_assert_gt(n500, 0);
  sim_request_free(&rq);
}

Test(llm_sim, durations_and_bucket_state_as_openai_headers_say) {
  char b[32];
  sim_format_duration(0.012, b, sizeof b);
  cr_assert_str_eq(b, "12ms");
  sim_format_duration(0.0004, b, sizeof b);
  cr_assert_str_eq(b, "1ms");
  sim_format_duration(1.5, b, sizeof b);
  cr_assert_str_eq(b, "1.5s");
  sim_format_duration(360, b, sizeof b);
  cr_assert_str_eq(b, "6m0s");
  sim_format_duration(3723, b, sizeof b);
  cr_assert_str_eq(b, "1h2m3s");
  sim_format_duration(0, b, sizeof b);
  cr_assert_str_eq(b, "0s");
  sim_bucket bk;
  sim_bucket_init(&bk, 10, 10, 100.0);
  for (int i = 0; i < 4; i++) cr_assert_eq(sim_bucket_take(&bk, 100.0), 0);
  long lim, rem;
  double reset;
  sim_bucket_state(&bk, &lim, &rem, &reset);
  cr_assert_eq(lim, 10);
  cr_assert_eq(rem, 6);
  cr_assert_float_eq(reset, 0.4, 1e-9); /* 4 tokens at 10/s */
}

Test(llm_sim, gemini_quota_429_carries_retry_info) {
  char *g = sim_quota_error_body(SIM_API_GEMINI, "quota", 13);
  json_t *j = json_loads(g, 0, NULL);
  cr_assert(j, "%s", g);
  json_t *d = json_object_get(json_object_get(j, "error"), "details");
  cr_assert_eq(json_array_size(d), 2);
  cr_assert_str_eq(json_string_value(json_object_get(json_array_get(d, 1), "@type")),
                   "type.googleapis.com/google.rpc.RetryInfo");
  cr_assert_str_eq(json_string_value(json_object_get(json_array_get(d, 1), "retryDelay")), "13s");
  cr_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "error"), "status")), "RESOURCE_EXHAUSTED");
  json_decref(j);
  free(g);
  char *o = sim_quota_error_body(SIM_API_OPENAI, "quota", 13);
  cr_assert(strstr(o, "rate_limit_error") && !strstr(o, "RetryInfo"), "%s", o);
  free(o);
}
