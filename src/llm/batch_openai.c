/* batch_openai.c — the OpenAI Batch API (llm.api = openai-batch).
 *
 * Submit: the lines {"custom_id","method":"POST","url":"/v1/chat/completions",
 * "body":BODY} as one JSONL file uploaded with POST /v1/files (multipart,
 * purpose=batch), then POST /v1/batches {"input_file_id","endpoint":
 * "/v1/chat/completions","completion_window":"24h","metadata":{"ragtide":
 * LABEL}}. Poll GET /v1/batches/{id}: status validating, in_progress,
 * finalizing, completed, failed, expired, cancelling, cancelled;
 * request_counts {total, completed, failed}. Collect GET
 * /v1/files/{output_file_id}/content and the error file: one line per
 * request, {"id","custom_id","response":{"status_code","request_id","body"},
 * "error":{"code","message"}|null}, in any order. Cancel POST
 * /v1/batches/{id}/cancel. Limits: 50,000 requests and 200 MB per input
 * file. */
#include "llm/batch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/util.h"

#define OAI_ENDPOINT "/v1/chat/completions"

static size_t oai_line_bytes(size_t id_len, size_t body_len) {
  /* {"custom_id":"ID","method":"POST","url":"/v1/chat/completions","body":BODY}\n */
  return 14 + id_len + 54 + body_len + 2;
}

static void url_of(const rt_bhttp *h, char *buf, size_t cap, const char *path) {
  snprintf(buf, cap, "%s%s", h->base, path);
}

static int oai_submit(rt_bhttp *h, const char *model, const char *label, rt_batch_input input, char *const *ids,
                      char *const *bodies, const size_t *lens, size_t n, char *id, size_t idcap, rt_err *err) {
  (void)model, (void)input; /* always an input file */
  size_t total = 0;
  for (size_t k = 0; k < n; k++) total += oai_line_bytes(strlen(ids[k]), lens[k]);
  char *data = rt_xmalloc(total + 1), *p = data;
  for (size_t k = 0; k < n; k++) {
    p += sprintf(p, "{\"custom_id\":\"%s\",\"method\":\"POST\",\"url\":\"" OAI_ENDPOINT "\",\"body\":", ids[k]);
    memcpy(p, bodies[k], lens[k]);
    p += lens[k];
    *p++ = '}';
    *p++ = '\n';
  }
  size_t len = (size_t)(p - data);
  char url[1024];
  url_of(h, url, sizeof url, "/v1/files");
  curl_mime *mime = curl_mime_init(h->e);
  curl_mimepart *part = curl_mime_addpart(mime);
  curl_mime_name(part, "purpose");
  curl_mime_data(part, "batch", CURL_ZERO_TERMINATED);
  part = curl_mime_addpart(mime);
  curl_mime_name(part, "file");
  curl_mime_data(part, data, len);
  char fname[200];
  snprintf(fname, sizeof fname, "%s.jsonl", label);
  curl_mime_filename(part, fname);
  curl_mime_type(part, "application/jsonl");
  json_t *f = rt_bhttp_json(h, "POST", url, NULL, 0, mime, err);
  curl_mime_free(mime);
  free(data);
  if (!f) return err->code;
  const char *fid = json_string_value(json_object_get(f, "id"));
  if (!fid) {
    json_decref(f);
    return rt_err_set(err, RT_ERR_ENDPOINT, "POST %s: the answer has no file id", url);
  }
  json_t *req = json_pack("{s:s,s:s,s:s,s:{s:s}}", "input_file_id", fid, "endpoint", OAI_ENDPOINT,
                          "completion_window", "24h", "metadata", "ragtide", label);
  json_decref(f);
  char *body = json_dumps(req, JSON_COMPACT);
  json_decref(req);
  url_of(h, url, sizeof url, "/v1/batches");
  json_t *b = rt_bhttp_json(h, "POST", url, body, strlen(body), NULL, err);
  free(body);
  if (!b) return err->code;
  const char *bid = json_string_value(json_object_get(b, "id"));
  int rc = RT_OK;
  if (bid) snprintf(id, idcap, "%s", bid);
  else rc = rt_err_set(err, RT_ERR_ENDPOINT, "POST %s: the answer has no batch id", url);
  json_decref(b);
  return rc;
}

static int oai_get(rt_bhttp *h, const char *id, rt_batch_state *st, rt_err *err) {
  char url[1024];
  snprintf(url, sizeof url, "%s/v1/batches/%s", h->base, id);
  json_t *b = rt_bhttp_json(h, "GET", url, NULL, 0, NULL, err);
  if (!b) return err->code;
  const char *s = json_string_value(json_object_get(b, "status"));
  if (!s) {
    json_decref(b);
    return rt_err_set(err, RT_ERR_ENDPOINT, "GET %s: the answer has no status", url);
  }
  snprintf(st->state, sizeof st->state, "%s", s);
  st->terminal = !strcmp(s, "completed") || !strcmp(s, "failed") || !strcmp(s, "expired") || !strcmp(s, "cancelled");
  json_t *rcnt = json_object_get(b, "request_counts");
  st->total = json_is_integer(json_object_get(rcnt, "total")) ? json_integer_value(json_object_get(rcnt, "total")) : -1;
  st->done = json_is_integer(json_object_get(rcnt, "completed")) ? json_integer_value(json_object_get(rcnt, "completed"))
                                                                   : -1;
  st->failed = json_is_integer(json_object_get(rcnt, "failed")) ? json_integer_value(json_object_get(rcnt, "failed"))
                                                                  : -1;
  const char *of = json_string_value(json_object_get(b, "output_file_id"));
  const char *ef = json_string_value(json_object_get(b, "error_file_id"));
  snprintf(st->out_file, sizeof st->out_file, "%s", of ? of : "");
  snprintf(st->err_file, sizeof st->err_file, "%s", ef ? ef : "");
  json_decref(b);
  return RT_OK;
}

/* One line of an output or error file, to the caller's fn. */
typedef struct oai_file_ctx {
  const char *fid;
  rt_batch_line_fn fn;
  void *ud;
} oai_file_ctx;

static void oai_line(void *ud, json_t *ln, long lineno) {
  oai_file_ctx *x = ud;
  const char *cid = json_string_value(json_object_get(ln, "custom_id"));
  json_t *r = json_object_get(ln, "response");
  json_t *e = json_object_get(ln, "error");
  json_int_t sc = json_integer_value(json_object_get(r, "status_code"));
  json_t *body = json_object_get(r, "body");
  if (!cid) {
    rt_warn("batch output %s: line %ld has no custom_id; skipped (its request is retried)", x->fid, lineno);
  } else if (sc / 100 == 2 && json_is_object(body)) {
    char *b = json_dumps(body, JSON_COMPACT);
    x->fn(x->ud, cid, -1, b, strlen(b), NULL);
    free(b);
  } else {
    char why[400];
    const char *m = json_string_value(json_object_get(e, "message"));
    const char *code = json_string_value(json_object_get(e, "code"));
    if (!m) m = json_string_value(json_object_get(json_object_get(body, "error"), "message"));
    if (code) snprintf(why, sizeof why, "batch line %s: %s", code, m ? m : "");
    else snprintf(why, sizeof why, "batch line status %lld: %s", (long long)sc, m ? m : "no message");
    x->fn(x->ud, cid, -1, NULL, 0, why);
  }
}

/* One file's lines to fn. */
static int oai_lines(rt_bhttp *h, const char *fid, rt_batch_line_fn fn, void *ud, rt_err *err) {
  char url[1024];
  snprintf(url, sizeof url, "%s/v1/files/%s/content", h->base, fid);
  oai_file_ctx x = {fid, fn, ud};
  return rt_bhttp_jsonl(h, url, oai_line, &x, err);
}

static int oai_collect(rt_bhttp *h, const char *id, const rt_batch_state *st, rt_batch_line_fn fn, void *ud,
                       rt_err *err) {
  (void)id;
  int rc = RT_OK;
  if (*st->out_file) rc = oai_lines(h, st->out_file, fn, ud, err);
  if (rc == RT_OK && *st->err_file) rc = oai_lines(h, st->err_file, fn, ud, err);
  return rc;
}

static int oai_cancel(rt_bhttp *h, const char *id, rt_err *err) {
  char url[1024];
  snprintf(url, sizeof url, "%s/v1/batches/%s/cancel", h->base, id);
  char *resp;
  size_t rl;
  int rc = rt_bhttp_ok(h, "POST", url, "{}", 2, NULL, &resp, &rl, err); /* the answer's body is not needed */
  free(resp);
  return rc;
}

static int oai_find(rt_bhttp *h, const char *label, char *id, size_t idcap, rt_err *err) {
  *id = '\0';
  char after[200] = "";
  for (int page = 0; page < 1000; page++) { /* GET /v1/batches?limit=100[&after=ID], newest first */
    char url[1024];
    snprintf(url, sizeof url, "%s/v1/batches?limit=100%s%s", h->base, *after ? "&after=" : "", after);
    json_t *l = rt_bhttp_json(h, "GET", url, NULL, 0, NULL, err);
    if (!l) return err->code;
    size_t i;
    json_t *b;
    const char *last = NULL;
    json_array_foreach(json_object_get(l, "data"), i, b) {
      const char *lab = json_string_value(json_object_get(json_object_get(b, "metadata"), "ragtide"));
      last = json_string_value(json_object_get(b, "id"));
      if (lab && last && !strcmp(lab, label)) {
        snprintf(id, idcap, "%s", last);
        json_decref(l);
        return RT_OK;
      }
    }
    int more = json_is_true(json_object_get(l, "has_more")) && last;
    if (more) snprintf(after, sizeof after, "%s", last);
    json_decref(l);
    if (!more) break;
  }
  return RT_OK;
}

const rt_batch_provider rt_batch_openai = {
  .name = "openai",
  .max_requests = 50000,
  .max_bytes = 200u * 1000u * 1000u,
  .default_bytes = 200u * 1000u * 1000u,
  .inline_bytes = 0,
  .line_bytes = oai_line_bytes,
  .submit = oai_submit,
  .get = oai_get,
  .collect = oai_collect,
  .cancel = oai_cancel,
  .find = oai_find,
};
