/* request.c — OpenAI / Gemini request bodies and response parsing (jansson). */
#include "llm/request.h"

#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

/* %.10g keeps 0.7 as 0.7 instead of 0.69999999999999996. */
#define DUMP_FLAGS (JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10))

static void oom(void) {
  fprintf(stderr, "ragtide: out of memory building an LLM request\n");
  exit(RT_ERR_NOMEM);
}

/* jansson setters that steal the value; a NULL value means OOM. */
static void put(json_t *obj, const char *key, json_t *v) {
  if (!v || json_object_set_new(obj, key, v)) oom();
}
static void push(json_t *arr, json_t *v) {
  if (!v || json_array_append_new(arr, v)) oom();
}
/* Strings: jansson refuses invalid UTF-8; a prompt with a stray byte must
 * still go out, so fall back to a lossy copy (bytes >= 0x80 -> '?'). */
static json_t *str(const char *s) {
  json_t *v = json_string(s);
  if (v) return v;
  char *c = rt_xstrdup(s);
  for (char *p = c; *p; p++)
    if ((unsigned char)*p >= 0x80) *p = '?';
  v = json_string(c);
  free(c);
  return v;
}


static char *dump(json_t *v, size_t *len) {
  char *s = json_dumps(v, DUMP_FLAGS);
  if (!s) oom();
  if (len) *len = strlen(s);
  return s;
}

/* One JSON value as text, exactly as json_dumps writes it inside a body. */
static char *dump_any(json_t *v) {
  if (!v) return NULL;
  char *s = json_dumps(v, DUMP_FLAGS | JSON_ENCODE_ANY);
  json_decref(v);
  if (!s) oom();
  return s;
}

static char *cat3(const char *a, const char *b, const char *c, size_t *len) {
  size_t la = strlen(a), lb = strlen(b), lc = strlen(c);
  char *o = rt_xmalloc(la + lb + lc + 1);
  memcpy(o, a, la);
  memcpy(o + la, b, lb);
  memcpy(o + la + lb, c, lc + 1);
  *len = la + lb + lc;
  return o;
}

/* head and tail (request.h). Returns -1 when the temperature is not finite
 * (jansson has no JSON for NaN / inf). */
static int build_pieces(rt_llm_reqfmt *f) {
  char *t = dump_any(json_real(f->temperature));
  if (!t) return -1;
  char mid[96];
  if (f->api == RT_LLM_API_OPENAI) {
    char *m = dump_any(str(f->model));
    f->head = cat3("{\"model\":", m, ",\"messages\":[", &f->head_len);
    free(m);
    snprintf(mid, sizeof mid, ",\"max_tokens\":%" JSON_INTEGER_FORMAT, (json_int_t)f->max_tokens);
    f->tail = cat3("],\"temperature\":", t, mid, &f->tail_len);
  } else {
    f->head = rt_xstrdup("{\"contents\":[{\"role\":\"user\",\"parts\":[{\"text\":");
    f->head_len = strlen(f->head);
    snprintf(mid, sizeof mid, ",\"maxOutputTokens\":%" JSON_INTEGER_FORMAT, (json_int_t)f->max_tokens);
    f->tail = cat3(",\"generationConfig\":{\"temperature\":", t, mid, &f->tail_len);
  }
  free(t);
  return 0;
}

/* The constraint fragment (",\"response_format\":{...}" etc.) with the
 * enum of every description but excl[0..nexcl); marker = 1: the enum array
 * replaced by the string "\x01enum\x01" (to split the pieces there). */
static char *build_fragment(const rt_llm_reqfmt *f, const uint32_t *excl, int nexcl, size_t *len, int marker) {
  json_t *en;
  if (marker) {
    en = json_string("\x01" "enum" "\x01");
  } else {
    en = json_array();
    if (!en) oom();
    for (uint32_t i = 0; i < f->nitems; i++) {
      int skip = 0;
      for (int k = 0; k < nexcl; k++) skip |= excl[k] == i;
      if (!skip) push(en, str(f->descs[i]));
    }
  }
  if (!en) oom();
  json_t *frag = NULL;
  const char *key = NULL;
  if (f->api == RT_LLM_API_OPENAI && f->constrain == RT_LLM_CONSTRAIN_JSON_SCHEMA) {
    json_t *cl = json_object(), *props = json_object(), *schema = json_object(), *js = json_object();
    frag = json_object();
    if (!cl || !props || !schema || !js || !frag) oom();
    put(cl, "type", json_string("string"));
    put(cl, "enum", en);
    put(props, "cluster", cl);
    put(schema, "type", json_string("object"));
    put(schema, "properties", props);
    json_t *req = json_array();
    if (!req) oom();
    push(req, json_string("cluster"));
    put(schema, "required", req);
    put(schema, "additionalProperties", json_false());
    put(js, "name", json_string("next_cluster"));
    put(js, "strict", json_true());
    put(js, "schema", schema);
    put(frag, "type", json_string("json_schema"));
    put(frag, "json_schema", js);
    key = "response_format";
  } else if (f->api == RT_LLM_API_OPENAI) { /* guided_choice */
    frag = en;
    key = "guided_choice";
  } else { /* gemini + json_schema: an enum-typed text response */
    json_t *schema = json_object();
    if (!schema) oom();
    put(schema, "type", json_string("STRING"));
    put(schema, "enum", en);
    /* Two keys of generationConfig: wrap them so one dump gives both. */
    frag = json_object();
    if (!frag) oom();
    put(frag, "responseMimeType", json_string("text/x.enum"));
    put(frag, "responseSchema", schema);
  }
  json_t *wrap;
  if (key) {
    wrap = json_object();
    if (!wrap) oom();
    put(wrap, key, frag);
  } else {
    wrap = frag;
  }
  size_t wl;
  char *w = dump(wrap, &wl);
  json_decref(wrap);
  /* "{...}" -> ",..." : the members, ready to splice before a closing brace. */
  w[0] = ',';
  w[wl - 1] = '\0';
  *len = wl - 1;
  return w;
}

int rt_llm_reqfmt_init(rt_llm_reqfmt *f, const rt_config *cfg, const rt_catalog *cat, rt_err *err) {
  memset(f, 0, sizeof *f);
  /* The batch apis send the same bodies (llm/batch.h). */
  if (!cfg->api || strcmp(cfg->api, "openai") == 0 || strcmp(cfg->api, "openai-batch") == 0)
    f->api = RT_LLM_API_OPENAI;
  else if (strcmp(cfg->api, "gemini") == 0 || strcmp(cfg->api, "gemini-batch") == 0)
    f->api = RT_LLM_API_GEMINI;
  else if (strcmp(cfg->api, "retrieval") == 0)
    return rt_err_set(err, RT_ERR_USAGE,
                      "llm.api = retrieval makes no LLM calls: the caller must not create an endpoint client");
  else
    return rt_err_set(err, RT_ERR_USAGE, "llm.api = \"%s\" is not openai, gemini, openai-batch, gemini-batch or retrieval", cfg->api);
  const char *c = cfg->constrain ? cfg->constrain : "off";
  if (strcmp(c, "off") == 0)
    f->constrain = RT_LLM_CONSTRAIN_OFF;
  else if (strcmp(c, "json_schema") == 0)
    f->constrain = RT_LLM_CONSTRAIN_JSON_SCHEMA;
  else if (strcmp(c, "guided_choice") == 0)
    f->constrain = RT_LLM_CONSTRAIN_GUIDED_CHOICE;
  else
    return rt_err_set(err, RT_ERR_USAGE, "llm.constrain = \"%s\" is not off, json_schema or guided_choice", c);
  if (f->api == RT_LLM_API_GEMINI && f->constrain == RT_LLM_CONSTRAIN_GUIDED_CHOICE)
    return rt_err_set(err, RT_ERR_USAGE,
                      "llm.constrain = guided_choice is a vLLM extension of the openai api; with llm.api = "
                      "gemini use llm.constrain = json_schema");
  if (!cfg->model || !*cfg->model) return rt_err_set(err, RT_ERR_USAGE, "llm.model is empty: name the model");
  if (cfg->max_tokens <= 0)
    return rt_err_set(err, RT_ERR_USAGE, "llm.max_tokens = %lld: must be > 0", (long long)cfg->max_tokens);
  f->model = rt_xstrdup(cfg->model);
  f->temperature = cfg->temperature;
  f->max_tokens = cfg->max_tokens;
  if (build_pieces(f)) {
    double t = f->temperature;
    rt_llm_reqfmt_free(f);
    return rt_err_set(err, RT_ERR_USAGE, "llm.temperature = %g: must be a finite number", t);
  }
  if (f->constrain == RT_LLM_CONSTRAIN_OFF) return RT_OK;

  if (!cat || cat->n == 0) {
    rt_llm_reqfmt_free(f);
    return rt_err_set(err, RT_ERR_INPUT, "llm.constrain = %s needs the catalog's descriptions, but the catalog is "
                      "empty", c);
  }
  f->nitems = cat->n;
  f->descs = rt_xmalloc(cat->n * sizeof *f->descs);
  for (uint32_t i = 0; i < cat->n; i++) f->descs[i] = rt_xstrdup(cat->desc[i]);
  size_t wl;
  f->fragment = build_fragment(f, NULL, 0, &wl, 0);
  f->fragment_len = wl;
  /* The pieces: the same fragment with a marker for the enum array, split there. */
  size_t ml;
  char *m = build_fragment(f, NULL, 0, &ml, 1);
  static const char marker[] = "\"\\u0001enum\\u0001\"";
  char *at = strstr(m, marker);
  if (!at) oom(); /* cannot happen: jansson escapes \x01 so */
  f->pre_len = (size_t)(at - m);
  f->frag_pre = rt_xmalloc(f->pre_len + 1);
  memcpy(f->frag_pre, m, f->pre_len);
  f->frag_pre[f->pre_len] = '\0';
  f->frag_post = rt_xstrdup(at + sizeof marker - 1);
  f->post_len = strlen(f->frag_post);
  free(m);
  f->item_off = rt_xmalloc(((size_t)cat->n + 1) * sizeof *f->item_off);
  RT_VEC(char) it = {0};
  for (uint32_t i = 0; i < cat->n; i++) {
    f->item_off[i] = it.len;
    char *d = dump_any(str(cat->desc[i]));
    size_t dl = strlen(d);
    rt_vec_reserve(&it, it.len + dl + 2);
    memcpy(it.data + it.len, d, dl);
    it.len += dl;
    it.data[it.len++] = ',';
    free(d);
  }
  f->item_off[cat->n] = it.len;
  rt_vec_push(&it, '\0');
  f->items = it.data;
  return RT_OK;
}

void rt_llm_reqfmt_free(rt_llm_reqfmt *f) {
  if (!f) return;
  free(f->frag_pre);
  free(f->frag_post);
  free(f->items);
  free(f->item_off);
  for (uint32_t i = 0; f->descs && i < f->nitems; i++) free(f->descs[i]);
  free(f->descs);
  free(f->model);
  free(f->fragment);
  free(f->head);
  free(f->tail);
  memset(f, 0, sizeof *f);
}

char *rt_llm_endpoint_url(const rt_llm_reqfmt *f, const char *base_url) {
  size_t bl = strlen(base_url);
  if (bl && base_url[bl - 1] == '/') bl--;
  size_t n = bl + strlen(f->model) + 64;
  char *u = rt_xmalloc(n);
  if (f->api == RT_LLM_API_OPENAI)
    snprintf(u, n, "%.*s/v1/chat/completions", (int)bl, base_url);
  else
    snprintf(u, n, "%.*s/v1beta/models/%s:generateContent", (int)bl, base_url, f->model);
  return u;
}

/* Splice the constraint fragment before the byte at `at` of body. */
static char *splice(char *body, size_t *len, size_t at, const char *frag, size_t fl) {
  char *out = rt_xmalloc(*len + fl + 1);
  memcpy(out, body, at);
  memcpy(out + at, frag, fl);
  memcpy(out + at + fl, body + at, *len - at + 1);
  free(body);
  *len += fl;
  return out;
}

/* The clusters a body leaves out of the enum: in range, distinct, sorted;
 * none when the fragment is off or nothing would be left. */
static int norm_excl(const rt_llm_reqfmt *f, const uint32_t *excl, int nexcl, uint32_t out[2]) {
  if (!f->fragment || !excl || nexcl <= 0) return 0;
  int n = 0;
  for (int k = 0; k < nexcl && k < 2; k++) {
    if (excl[k] >= f->nitems || (n && out[0] == excl[k])) continue;
    out[n++] = excl[k];
  }
  if (n == 2 && out[0] > out[1]) {
    uint32_t t = out[0];
    out[0] = out[1];
    out[1] = t;
  }
  return (uint32_t)n >= f->nitems ? 0 : n;
}

char *rt_llm_build_body_ref(const rt_llm_reqfmt *f, const char *system, const char *user, int64_t seed,
                            size_t *len) {
  return rt_llm_build_body_ref_ex(f, system, user, seed, NULL, 0, len);
}

char *rt_llm_build_body_ref_ex(const rt_llm_reqfmt *f, const char *system, const char *user, int64_t seed,
                               const uint32_t *excl_in, int nexcl_in, size_t *len) {
  uint32_t excl[2];
  int nexcl = norm_excl(f, excl_in, nexcl_in, excl);
  size_t fl = 0;
  char *frag = NULL;
  if (f->fragment) {
    if (nexcl) {
      frag = build_fragment(f, excl, nexcl, &fl, 0);
    } else {
      frag = rt_xstrdup(f->fragment);
      fl = f->fragment_len;
    }
  }
  json_t *root = json_object();
  if (!root) oom();
  size_t n;
  char *body;
  if (f->api == RT_LLM_API_OPENAI) {
    json_t *msgs = json_array();
    if (!msgs) oom();
    if (system) {
      json_t *m = json_object();
      if (!m) oom();
      put(m, "role", json_string("system"));
      put(m, "content", str(system));
      push(msgs, m);
    }
    json_t *m = json_object();
    if (!m) oom();
    put(m, "role", json_string("user"));
    put(m, "content", str(user ? user : ""));
    push(msgs, m);
    put(root, "model", str(f->model));
    put(root, "messages", msgs);
    put(root, "temperature", json_real(f->temperature));
    put(root, "max_tokens", json_integer(f->max_tokens));
    if (seed) put(root, "seed", json_integer(seed));
    body = dump(root, &n);
    json_decref(root);
    if (frag) body = splice(body, &n, n - 1, frag, fl);
  } else {
    json_t *contents = json_array(), *c = json_object(), *parts = json_array(), *p = json_object();
    if (!contents || !c || !parts || !p) oom();
    put(p, "text", str(user ? user : ""));
    push(parts, p);
    put(c, "role", json_string("user"));
    put(c, "parts", parts);
    push(contents, c);
    put(root, "contents", contents);
    if (system) {
      json_t *si = json_object(), *sparts = json_array(), *sp = json_object();
      if (!si || !sparts || !sp) oom();
      put(sp, "text", str(system));
      push(sparts, sp);
      put(si, "parts", sparts);
      put(root, "systemInstruction", si);
    }
    json_t *gc = json_object();
    if (!gc) oom();
    put(gc, "temperature", json_real(f->temperature));
    put(gc, "maxOutputTokens", json_integer(f->max_tokens));
    if (seed) put(gc, "seed", json_integer(seed));
    /* generationConfig is the last member, so the body ends with "}}" and the
     * fragment goes before the inner brace. */
    put(root, "generationConfig", gc);
    body = dump(root, &n);
    json_decref(root);
    if (frag) body = splice(body, &n, n - 2, frag, fl);
  }
  free(frag);
  if (len) *len = n;
  return body;
}

/* --- the spliced builder ----------------------------------------------------
 * A body is head + escaped strings + tail + seed + fragment. The escaping is
 * jansson's (dump.c): '"' '\\' and the controls below 0x20 (\b \f \n \r \t by
 * name, the rest as \u00XX in upper-case hex), everything else verbatim,
 * '/' not escaped. A string that is not valid UTF-8 by jansson's rules
 * (no overlongs, no surrogates, nothing above U+10FFFF) is sent lossy with
 * bytes >= 0x80 as '?', as str() does. test_request checks this against
 * rt_llm_build_body_ref on random bytes. */

/* Length of the valid UTF-8 sequence at s, 0 if it is not one. */
static size_t utf8_seq(const unsigned char *s) {
  unsigned c = s[0];
  size_t n;
  uint32_t v;
  if (c < 0x80) return 1;
  if (c < 0xC2) return 0; /* a lone continuation byte, or an overlong C0/C1 lead */
  if (c < 0xE0) {
    n = 2;
    v = c & 0x1F;
  } else if (c < 0xF0) {
    n = 3;
    v = c & 0x0F;
  } else if (c < 0xF5) {
    n = 4;
    v = c & 0x07;
  } else {
    return 0;
  }
  for (size_t i = 1; i < n; i++) {
    if ((s[i] & 0xC0) != 0x80) return 0; /* also stops at the terminating NUL */
    v = (v << 6) | (s[i] & 0x3F);
  }
  if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
  if ((n == 3 && v < 0x800) || (n == 4 && v < 0x10000)) return 0;
  return n;
}

/* Bytes the escaped form of s takes (quotes included); *lossy = 1 when s is
 * not valid UTF-8. */
static size_t esc_len(const char *s, int *lossy) {
  const unsigned char *p = (const unsigned char *)s;
  size_t n = 2;
  *lossy = 0;
  while (*p) {
    unsigned c = *p;
    if (c >= 0x80) {
      size_t k = utf8_seq(p);
      if (!k) {
        *lossy = 1;
        k = 1;
      }
      n += k;
      p += k;
      continue;
    }
    if (c == '"' || c == '\\' || c == '\b' || c == '\f' || c == '\n' || c == '\r' || c == '\t')
      n += 2;
    else if (c < 0x20)
      n += 6;
    else
      n += 1;
    p++;
  }
  return n;
}

static char *esc_put(char *o, const char *s, int lossy) {
  static const char hex[] = "0123456789ABCDEF";
  *o++ = '"';
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    unsigned c = *p;
    if (c >= 0x20 && c != '"' && c != '\\') {
      *o++ = (lossy && c >= 0x80) ? '?' : (char)c;
      continue;
    }
    *o++ = '\\';
    switch (c) {
    case '"': *o++ = '"'; break;
    case '\\': *o++ = '\\'; break;
    case '\b': *o++ = 'b'; break;
    case '\f': *o++ = 'f'; break;
    case '\n': *o++ = 'n'; break;
    case '\r': *o++ = 'r'; break;
    case '\t': *o++ = 't'; break;
    default:
      memcpy(o, "u00", 3);
      o[3] = hex[c >> 4];
      o[4] = hex[c & 15];
      o += 5;
    }
  }
  *o++ = '"';
  return o;
}

#define PUT(o, lit) (memcpy((o), (lit), sizeof(lit) - 1), (o) + sizeof(lit) - 1)

char *rt_llm_build_body(const rt_llm_reqfmt *f, const char *system, const char *user, int64_t seed, size_t *len) {
  return rt_llm_build_body_ex(f, system, user, seed, NULL, 0, len);
}

/* Items [i, j) of the enum, without the last one's ','. */
static char *put_items(const rt_llm_reqfmt *f, char *o, uint32_t i, uint32_t j, int *first) {
  if (i >= j) return o;
  if (!*first) *o++ = ',';
  *first = 0;
  size_t a = f->item_off[i], b = f->item_off[j] - 1;
  memcpy(o, f->items + a, b - a);
  return o + (b - a);
}

char *rt_llm_build_body_ex(const rt_llm_reqfmt *f, const char *system, const char *user, int64_t seed,
                           const uint32_t *excl_in, int nexcl_in, size_t *len) {
  if (!user) user = "";
  uint32_t excl[2];
  int nexcl = norm_excl(f, excl_in, nexcl_in, excl);
  int ulossy = 0, slossy = 0;
  size_t ul = esc_len(user, &ulossy), sl = system ? esc_len(system, &slossy) : 0;
  char seedbuf[40];
  int seedl = seed ? snprintf(seedbuf, sizeof seedbuf, ",\"seed\":%" JSON_INTEGER_FORMAT, (json_int_t)seed) : 0;
  /* The literals below are at most ~64 bytes in all. */
  size_t cap = f->head_len + ul + sl + f->tail_len + (size_t)seedl + f->fragment_len + 128;
  char *body = rt_xmalloc(cap);
  char *o = body;
  memcpy(o, f->head, f->head_len);
  o += f->head_len;
  if (f->api == RT_LLM_API_OPENAI) {
    if (system) {
      o = PUT(o, "{\"role\":\"system\",\"content\":");
      o = esc_put(o, system, slossy);
      o = PUT(o, "},");
    }
    o = PUT(o, "{\"role\":\"user\",\"content\":");
    o = esc_put(o, user, ulossy);
    o = PUT(o, "}");
  } else {
    o = esc_put(o, user, ulossy);
    o = PUT(o, "}]}]");
    if (system) {
      o = PUT(o, ",\"systemInstruction\":{\"parts\":[{\"text\":");
      o = esc_put(o, system, slossy);
      o = PUT(o, "}]}");
    }
  }
  memcpy(o, f->tail, f->tail_len);
  o += f->tail_len;
  memcpy(o, seedbuf, (size_t)seedl);
  o += seedl;
  if (f->fragment && nexcl) {
    memcpy(o, f->frag_pre, f->pre_len);
    o += f->pre_len;
    *o++ = '[';
    int first = 1;
    o = put_items(f, o, 0, excl[0], &first);
    if (nexcl == 1) {
      o = put_items(f, o, excl[0] + 1, f->nitems, &first);
    } else {
      o = put_items(f, o, excl[0] + 1, excl[1], &first);
      o = put_items(f, o, excl[1] + 1, f->nitems, &first);
    }
    *o++ = ']';
    memcpy(o, f->frag_post, f->post_len);
    o += f->post_len;
  } else if (f->fragment) {
    memcpy(o, f->fragment, f->fragment_len);
    o += f->fragment_len;
  }
  o = f->api == RT_LLM_API_OPENAI ? PUT(o, "}") : PUT(o, "}}");
  *o = '\0';
  if (len) *len = (size_t)(o - body);
  return body;
}

static int bad(char *why, size_t cap, const char *fmt, const char *a) {
  if (why && cap) snprintf(why, cap, fmt, a);
  return RT_ERR_ENDPOINT;
}

static int64_t int_or(json_t *o, const char *k) {
  json_t *v = o ? json_object_get(o, k) : NULL;
  return json_is_integer(v) ? (int64_t)json_integer_value(v) : -1;
}

int rt_llm_parse_response(const rt_llm_reqfmt *f, const char *body, size_t len, char **text, rt_llm_usage *usage,
                          char *why, size_t why_cap) {
  *text = NULL;
  if (usage) usage->prompt_tokens = usage->completion_tokens = -1;
  json_error_t je;
  json_t *root = json_loadb(body ? body : "", body ? len : 0, 0, &je);
  if (!root) {
    if (why && why_cap)
      snprintf(why, why_cap, "malformed JSON response at byte %d: %s", je.position, je.text);
    return RT_ERR_ENDPOINT;
  }
  int rc = RT_OK;
  const char *content = NULL;
  char *joined = NULL;
  if (!json_is_object(root)) {
    rc = bad(why, why_cap, "response is not a JSON object%s", "");
    goto out;
  }
  json_t *e = json_object_get(root, "error");
  if (e) {
    json_t *m = json_is_object(e) ? json_object_get(e, "message") : e;
    rc = bad(why, why_cap, "response carries an error: %.200s", json_is_string(m) ? json_string_value(m) : "?");
    goto out;
  }
  if (f->api == RT_LLM_API_OPENAI) {
    json_t *ch = json_object_get(root, "choices");
    if (!json_is_array(ch) || json_array_size(ch) == 0) {
      rc = bad(why, why_cap, "response has no choices[0]%s", "");
      goto out;
    }
    json_t *msg = json_object_get(json_array_get(ch, 0), "message");
    json_t *ct = json_is_object(msg) ? json_object_get(msg, "content") : NULL;
    if (!json_is_string(ct)) {
      rc = bad(why, why_cap, "choices[0].message.content is %s", ct ? "not a string" : "missing");
      goto out;
    }
    content = json_string_value(ct);
    json_t *u = json_object_get(root, "usage");
    if (usage) {
      usage->prompt_tokens = int_or(u, "prompt_tokens");
      usage->completion_tokens = int_or(u, "completion_tokens");
    }
  } else {
    json_t *cands = json_object_get(root, "candidates");
    if (!json_is_array(cands) || json_array_size(cands) == 0) {
      json_t *pf = json_object_get(root, "promptFeedback");
      json_t *br = json_is_object(pf) ? json_object_get(pf, "blockReason") : NULL;
      if (json_is_string(br))
        rc = bad(why, why_cap, "no candidates: the prompt was blocked (%.100s)", json_string_value(br));
      else
        rc = bad(why, why_cap, "response has no candidates[0]%s", "");
      goto out;
    }
    json_t *cont = json_object_get(json_array_get(cands, 0), "content");
    json_t *parts = json_is_object(cont) ? json_object_get(cont, "parts") : NULL;
    if (!json_is_array(parts) || json_array_size(parts) == 0) {
      rc = bad(why, why_cap, "candidates[0].content.parts is %s", parts ? "empty or not an array" : "missing");
      goto out;
    }
    /* The answer is the text of the parts (normally exactly one); parts marked
     * "thought" are a thinking model's reasoning, not the answer. */
    size_t total = 0, nt = 0;
    for (size_t i = 0; i < json_array_size(parts); i++) {
      json_t *p = json_array_get(parts, i);
      json_t *t = json_object_get(p, "text");
      if (json_is_string(t) && !json_is_true(json_object_get(p, "thought"))) {
        total += json_string_length(t);
        nt++;
      }
    }
    if (nt == 0) {
      rc = bad(why, why_cap, "candidates[0].content.parts has no text part%s", "");
      goto out;
    }
    joined = rt_xmalloc(total + 1);
    size_t w = 0;
    for (size_t i = 0; i < json_array_size(parts); i++) {
      json_t *p = json_array_get(parts, i);
      json_t *t = json_object_get(p, "text");
      if (json_is_string(t) && !json_is_true(json_object_get(p, "thought"))) {
        memcpy(joined + w, json_string_value(t), json_string_length(t));
        w += json_string_length(t);
      }
    }
    joined[w] = '\0';
    content = joined;
    json_t *u = json_object_get(root, "usageMetadata");
    if (usage) {
      usage->prompt_tokens = int_or(u, "promptTokenCount");
      usage->completion_tokens = int_or(u, "candidatesTokenCount");
    }
  }
  if (f->api == RT_LLM_API_OPENAI && f->constrain == RT_LLM_CONSTRAIN_JSON_SCHEMA) {
    /* Structured output: {"cluster": "..."}; anything else is returned raw. */
    json_t *inner = json_loads(content, 0, NULL);
    json_t *cl = json_is_object(inner) ? json_object_get(inner, "cluster") : NULL;
    if (json_is_string(cl)) *text = rt_xstrdup(json_string_value(cl));
    json_decref(inner);
  }
  if (!*text) *text = rt_xstrdup(content);
  rt_trim(*text);
out:
  free(joined);
  json_decref(root);
  return rc;
}

void rt_llm_error_message(const char *body, size_t len, char *out, size_t cap) {
  if (!cap) return;
  out[0] = '\0';
  if (!body || !len) return;
  json_t *root = json_loadb(body, len, 0, NULL);
  if (root) {
    json_t *e = json_object_get(root, "error");
    json_t *m = json_is_object(e) ? json_object_get(e, "message") : e;
    if (!json_is_string(m)) m = json_object_get(root, "message");
    if (json_is_string(m)) {
      snprintf(out, cap, "%s", json_string_value(m));
      json_decref(root);
      goto clean;
    }
    json_decref(root);
  }
  size_t n = len < cap - 1 ? len : cap - 1;
  if (n > 200) n = 200;
  memcpy(out, body, n);
  out[n] = '\0';
clean:
  for (char *p = out; *p; p++)
    if ((unsigned char)*p < 0x20) *p = ' ';
  rt_trim(out);
}
