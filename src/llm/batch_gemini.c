/* batch_gemini.c — the Gemini Batch API (llm.api = gemini-batch).
 *
 * Submit: POST {base}/v1beta/models/{model}:batchGenerateContent with
 * {"batch":{"displayName":LABEL,"inputConfig":INPUT}}; the answer is an
 * operation whose name is the batch, "batches/{id}". INPUT is either
 *  - inline: {"requests":{"requests":[{"request":BODY,"metadata":{"key":ID}},
 *    ...]}} (the whole create request under 20 MB), or
 *  - an input file: {"fileName":"files/{id}"} (the REST reference's
 *    InputConfig.fileName; the guide's curl example spells it input_config.
 *    file_name, which proto JSON accepts too), a JSONL file of lines
 *    {"key":ID,"request":BODY} (up to 2 GB) uploaded with the Files API's
 *    resumable protocol: POST {base}/upload/v1beta/files with headers
 *    X-Goog-Upload-Protocol: resumable, X-Goog-Upload-Command: start,
 *    X-Goog-Upload-Header-Content-Length: N, X-Goog-Upload-Header-Content-Type
 *    and the JSON {"file":{"display_name":LABEL}}; the answer's
 *    x-goog-upload-url header is where the bytes go: POST there with
 *    X-Goog-Upload-Offset: 0, X-Goog-Upload-Command: upload, finalize; the
 *    answer is {"file":{"name":"files/{id}",...}}.
 * llm.batch_input chooses (auto: inline when the batch fits, a file else).
 * Poll GET {base}/v1beta/{name}: metadata.state BATCH_STATE_PENDING,
 * _RUNNING, _SUCCEEDED, _FAILED, _CANCELLED, _EXPIRED (JOB_STATE_* as the
 * SDKs spell them are read too), metadata.batchStats {requestCount,
 * successfulRequestCount, failedRequestCount} (int64 as strings), done.
 * Collect: inline input is answered in response.inlinedResponses.
 * inlinedResponses[], one per request in input order, each {"response":
 * GenerateContentResponse} or {"error": Status}, with metadata.key when the
 * service echoes it (matched by position otherwise); file input in
 * response.responsesFile ("files/{id}"), downloaded with GET
 * {base}/download/v1beta/{file}:download?alt=media: JSONL lines {"key":ID,
 * "response":GenerateContentResponse} or with a Status ("error" or
 * "status") in place of the response, in any order. Cancel POST
 * {base}/v1beta/{name}:cancel. Sources: https://ai.google.dev/gemini-api/docs/batch-mode
 * ("Input file", "Retrieving results", REST examples),
 * https://ai.google.dev/api/batch-mode (InputConfig, GenerateContentBatchOutput),
 * https://ai.google.dev/gemini-api/docs/files (REST resumable upload).
 * Uploaded files expire after 48 h at Google; ragtide does not delete them
 * (the batch still needs its input while it runs). */
#include "llm/batch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/util.h"

/* The bytes one request adds to a batch: the inline item, which is longer
 * than the input file's line {"key":"ID","request":BODY}\n, so one bound
 * serves both. */
static size_t gem_line_bytes(size_t id_len, size_t body_len) {
  /* {"request":BODY,"metadata":{"key":"ID"}}, */
  return 11 + body_len + 21 + id_len + 4;
}

/* The length of url's origin: scheme://host[:port], up to the path. */
static size_t origin_len(const char *url) {
  const char *p = strstr(url, "://");
  p = p ? p + 3 : url;
  return (size_t)(p - url) + strcspn(p, "/?#");
}

/* The Files API's resumable upload of data (len bytes, JSONL) named label:
 * the file's name ("files/...") into name. */
static int gem_upload(rt_bhttp *h, const char *label, const char *data, size_t len, char *name, size_t cap,
                      rt_err *err) {
  char url[1024], up[2048], clen[80];
  snprintf(url, sizeof url, "%s/upload/v1beta/files", h->base);
  snprintf(clen, sizeof clen, "X-Goog-Upload-Header-Content-Length: %zu", len);
  struct curl_slist *x = curl_slist_append(NULL, "X-Goog-Upload-Protocol: resumable");
  x = curl_slist_append(x, "X-Goog-Upload-Command: start");
  x = curl_slist_append(x, clen);
  x = curl_slist_append(x, "X-Goog-Upload-Header-Content-Type: application/jsonl");
  x = curl_slist_append(x, "Content-Type: application/json");
  json_t *meta = json_pack("{s:{s:s}}", "file", "display_name", label);
  char *mb = json_dumps(meta, JSON_COMPACT);
  json_decref(meta);
  char *resp;
  size_t rl;
  int rc = rt_bhttp_post_h(h, url, mb, strlen(mb), x, "x-goog-upload-url", up, sizeof up, &resp, &rl, err);
  curl_slist_free_all(x);
  free(mb);
  free(resp);
  if (rc) return rc;
  if (strncmp(up, "http://", 7) != 0 && strncmp(up, "https://", 8) != 0)
    return rt_err_set(err, RT_ERR_ENDPOINT,
                      "POST %s: the answer has no x-goog-upload-url header to upload the batch input to (does "
                      "llm.base_url serve the Gemini Files API?)",
                      url);
  /* The bytes go out with the API key: only to llm.base_url's own origin,
   * never to wherever a misbehaving proxy or server points. */
  size_t ol = origin_len(h->base);
  if (strncmp(up, h->base, ol) != 0 || (up[ol] != '/' && up[ol] != '?' && up[ol] != '\0'))
    return rt_err_set(err, RT_ERR_ENDPOINT,
                      "POST %s: the upload URL it answered (x-goog-upload-url) is on %.*s, not on llm.base_url's "
                      "origin %.*s; the API key is not sent there (check llm.base_url and any proxy in between)",
                      url, (int)origin_len(up), up, (int)ol, h->base);
  x = curl_slist_append(NULL, "X-Goog-Upload-Offset: 0");
  x = curl_slist_append(x, "X-Goog-Upload-Command: upload, finalize");
  x = curl_slist_append(x, "Content-Type: application/jsonl");
  rc = rt_bhttp_post_h(h, up, data, len, x, NULL, NULL, 0, &resp, &rl, err);
  curl_slist_free_all(x);
  if (rc) return rc;
  json_error_t je;
  json_t *f = json_loadb(resp, rl, 0, &je);
  free(resp);
  const char *fn = json_string_value(json_object_get(json_object_get(f, "file"), "name"));
  if (fn && !strncmp(fn, "files/", 6)) snprintf(name, cap, "%s", fn);
  else rc = rt_err_set(err, RT_ERR_ENDPOINT, "uploading the batch input of %s: the answer names no file (files/...)",
                       label);
  json_decref(f);
  return rc;
}

/* The create request's body with the requests inline (lines: their bytes). */
static char *gem_inline_body(const char *label, char *const *ids, char *const *bodies, const size_t *lens, size_t n,
                             size_t lines, size_t *len) {
  json_t *jl = json_string(label);
  char *lab = json_dumps(jl, JSON_ENCODE_ANY | JSON_COMPACT);
  json_decref(jl);
  char *data = rt_xmalloc(lines + 128 + strlen(lab)), *p = data;
  p += sprintf(p, "{\"batch\":{\"displayName\":%s,\"inputConfig\":{\"requests\":{\"requests\":[", lab);
  free(lab);
  for (size_t k = 0; k < n; k++) {
    p += sprintf(p, "%s{\"request\":", k ? "," : "");
    memcpy(p, bodies[k], lens[k]);
    p += lens[k];
    p += sprintf(p, ",\"metadata\":{\"key\":\"%s\"}}", ids[k]);
  }
  p += sprintf(p, "]}}}}");
  *len = (size_t)(p - data);
  return data;
}

/* Upload the requests as an input file; the create request's body naming
 * it, or NULL (err set). */
static char *gem_file_body(rt_bhttp *h, const char *label, char *const *ids, char *const *bodies, const size_t *lens,
                           size_t n, size_t lines, size_t *len, rt_err *err) {
  char *data = rt_xmalloc(lines + 1), *p = data; /* a file line is shorter than an inline item */
  for (size_t k = 0; k < n; k++) {
    p += sprintf(p, "{\"key\":\"%s\",\"request\":", ids[k]);
    memcpy(p, bodies[k], lens[k]);
    p += lens[k];
    *p++ = '}';
    *p++ = '\n';
  }
  char fname[256] = "";
  int rc = gem_upload(h, label, data, (size_t)(p - data), fname, sizeof fname, err);
  free(data);
  if (rc) return NULL;
  json_t *req = json_pack("{s:{s:s,s:{s:s}}}", "batch", "displayName", label, "inputConfig", "fileName", fname);
  char *body = json_dumps(req, JSON_COMPACT);
  json_decref(req);
  *len = strlen(body);
  return body;
}

static int gem_submit(rt_bhttp *h, const char *model, const char *label, rt_batch_input input, char *const *ids,
                      char *const *bodies, const size_t *lens, size_t n, char *id, size_t idcap, rt_err *err) {
  size_t lines = 0, blen = 0;
  for (size_t k = 0; k < n; k++) lines += gem_line_bytes(strlen(ids[k]), lens[k]);
  int file = input == RT_BATCH_INPUT_FILE || (input == RT_BATCH_INPUT_AUTO && lines > rt_batch_gemini.inline_bytes);
  char *data = file ? gem_file_body(h, label, ids, bodies, lens, n, lines, &blen, err)
                    : gem_inline_body(label, ids, bodies, lens, n, lines, &blen);
  if (!data) return err->code;
  char url[1024];
  char *m = curl_easy_escape(h->e, model, 0);
  snprintf(url, sizeof url, "%s/v1beta/models/%s:batchGenerateContent", h->base, m ? m : model);
  curl_free(m);
  json_t *op = rt_bhttp_json(h, "POST", url, data, blen, NULL, err);
  free(data);
  if (!op) return err->code;
  int rc = RT_OK;
  const char *name = json_string_value(json_object_get(op, "name"));
  if (!name) name = json_string_value(json_object_get(json_object_get(op, "metadata"), "name"));
  if (name && !strncmp(name, "batches/", 8)) snprintf(id, idcap, "%s", name);
  else rc = rt_err_set(err, RT_ERR_ENDPOINT, "POST %s: the answer names no batch (batches/...)", url);
  json_decref(op);
  return rc;
}

static int64_t count_of(json_t *stats, const char *k) {
  json_t *v = json_object_get(stats, k);
  if (json_is_string(v)) return strtoll(json_string_value(v), NULL, 10);
  if (json_is_integer(v)) return json_integer_value(v);
  return -1;
}

static int gem_get(rt_bhttp *h, const char *id, rt_batch_state *st, rt_err *err) {
  char url[1024];
  snprintf(url, sizeof url, "%s/v1beta/%s", h->base, id);
  json_t *op = rt_bhttp_json(h, "GET", url, NULL, 0, NULL, err);
  if (!op) return err->code;
  json_t *md = json_object_get(op, "metadata");
  const char *s = json_string_value(json_object_get(md, "state"));
  if (!s) {
    json_decref(op);
    return rt_err_set(err, RT_ERR_ENDPOINT, "GET %s: the answer has no metadata.state", url);
  }
  snprintf(st->state, sizeof st->state, "%s", s);
  const char *w = strstr(s, "_STATE_");
  w = w ? w + 7 : s;
  st->terminal = json_is_true(json_object_get(op, "done")) || !strcmp(w, "SUCCEEDED") || !strcmp(w, "FAILED") ||
                 !strcmp(w, "CANCELLED") || !strcmp(w, "EXPIRED");
  json_t *bs = json_object_get(md, "batchStats");
  st->total = count_of(bs, "requestCount");
  st->done = count_of(bs, "successfulRequestCount");
  st->failed = count_of(bs, "failedRequestCount");
  json_decref(st->op);
  st->op = op;
  return RT_OK;
}

/* One answer (item: an inline response or a line of the responses file) to fn. */
static void gem_item(json_t *it, const char *key, long index, rt_batch_line_fn fn, void *ud) {
  json_t *r = json_object_get(it, "response");
  if (json_is_object(r)) {
    char *b = json_dumps(r, JSON_COMPACT);
    fn(ud, key, index, b, strlen(b), NULL);
    free(b);
    return;
  }
  json_t *e = json_object_get(it, "error");
  if (!e) e = json_object_get(it, "status");
  const char *m = json_string_value(json_object_get(e, "message"));
  char why[400];
  snprintf(why, sizeof why, "batch line error %lld: %s", (long long)json_integer_value(json_object_get(e, "code")),
           m ? m : "no message");
  fn(ud, key, index, NULL, 0, why);
}

/* A line of the responses file of a file-input batch, to the caller's fn. */
typedef struct gem_file_ctx {
  const char *file;
  rt_batch_line_fn fn;
  void *ud;
  long index;
} gem_file_ctx;

static void gem_file_line(void *ud, json_t *ln, long lineno) {
  gem_file_ctx *x = ud;
  const char *key = json_string_value(json_object_get(ln, "key"));
  if (!key) key = json_string_value(json_object_get(json_object_get(ln, "metadata"), "key"));
  if (!key) rt_warn("batch responses %s: line %ld has no key; skipped (its request is retried)", x->file, lineno);
  else gem_item(ln, key, x->index, x->fn, x->ud);
  x->index++;
}

/* The responses file of a file-input batch, line by line, to fn. */
static int gem_file_lines(rt_bhttp *h, const char *file, rt_batch_line_fn fn, void *ud, rt_err *err) {
  char url[1024];
  snprintf(url, sizeof url, "%s/download/v1beta/%s:download?alt=media", h->base, file);
  gem_file_ctx x = {file, fn, ud, 0};
  return rt_bhttp_jsonl(h, url, gem_file_line, &x, err);
}

static int gem_collect(rt_bhttp *h, const char *id, const rt_batch_state *st, rt_batch_line_fn fn, void *ud,
                       rt_err *err) {
  (void)id;
  json_t *resp = json_object_get(st->op, "response");
  const char *rf = json_string_value(json_object_get(resp, "responsesFile"));
  if (rf) return gem_file_lines(h, rf, fn, ud, err);
  json_t *arr = json_object_get(json_object_get(resp, "inlinedResponses"), "inlinedResponses");
  size_t i;
  json_t *it;
  json_array_foreach(arr, i, it) {
    const char *key = json_string_value(json_object_get(json_object_get(it, "metadata"), "key"));
    gem_item(it, key, (long)i, fn, ud);
  }
  return RT_OK;
}

static int gem_cancel(rt_bhttp *h, const char *id, rt_err *err) {
  char url[1024];
  snprintf(url, sizeof url, "%s/v1beta/%s:cancel", h->base, id);
  char *resp;
  size_t rl;
  int rc = rt_bhttp_ok(h, "POST", url, "{}", 2, NULL, &resp, &rl, err); /* the answer's body is not needed */
  free(resp);
  return rc;
}

static int gem_find(rt_bhttp *h, const char *label, char *id, size_t idcap, rt_err *err) {
  *id = '\0';
  char token[512] = "";
  for (int page = 0; page < 1000; page++) { /* GET /v1beta/batches?pageSize=100[&pageToken=T] */
    char url[1024];
    snprintf(url, sizeof url, "%s/v1beta/batches?pageSize=100%s%s", h->base, *token ? "&pageToken=" : "", token);
    json_t *l = rt_bhttp_json(h, "GET", url, NULL, 0, NULL, err);
    if (!l) return err->code;
    size_t i;
    json_t *op;
    json_array_foreach(json_object_get(l, "operations"), i, op) {
      const char *dn = json_string_value(json_object_get(json_object_get(op, "metadata"), "displayName"));
      const char *name = json_string_value(json_object_get(op, "name"));
      if (dn && name && !strcmp(dn, label)) {
        snprintf(id, idcap, "%s", name);
        json_decref(l);
        return RT_OK;
      }
    }
    const char *nt = json_string_value(json_object_get(l, "nextPageToken"));
    int more = nt && *nt;
    if (more) {
      char *e = curl_easy_escape(h->e, nt, 0);
      snprintf(token, sizeof token, "%s", e ? e : "");
      curl_free(e);
    }
    json_decref(l);
    if (!more) break;
  }
  return RT_OK;
}

const rt_batch_provider rt_batch_gemini = {
  .name = "gemini",
  .max_requests = 50000,
  .max_bytes = 2000u * 1000u * 1000u,        /* an input file: 2 GB */
  .default_bytes = 200u * 1000u * 1000u,     /* a batch is framed in memory on its rank */
  .inline_bytes = 20u * 1000u * 1000u - 4096u, /* 20 MB inline, less the envelope */
  .line_bytes = gem_line_bytes,
  .submit = gem_submit,
  .get = gem_get,
  .collect = gem_collect,
  .cancel = gem_cancel,
  .find = gem_find,
};
