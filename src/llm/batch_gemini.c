/* batch_gemini.c — the Gemini Batch API (llm.api = gemini-batch).
 *
 * Submit: POST {base}/v1beta/models/{model}:batchGenerateContent with
 * {"batch":{"displayName":LABEL,"inputConfig":{"requests":{"requests":[
 * {"request":BODY,"metadata":{"key":ID}}, ...]}}}} (inline requests: the
 * whole request under 20 MB); the answer is an operation whose name is the
 * batch, "batches/{id}". Poll GET {base}/v1beta/{name}: metadata.state
 * BATCH_STATE_PENDING, _RUNNING, _SUCCEEDED, _FAILED, _CANCELLED, _EXPIRED
 * (JOB_STATE_* as the SDKs spell them are read too), metadata.batchStats
 * {requestCount, successfulRequestCount, failedRequestCount} (int64 as
 * strings), done. Collect: response.inlinedResponses.inlinedResponses[], one
 * per request in input order, each {"response": GenerateContentResponse} or
 * {"error": Status}, with metadata.key when the service echoes it (matched
 * by position otherwise). Cancel POST {base}/v1beta/{name}:cancel.
 * Input files (the Files API's resumable upload) are not used. */
#include "llm/batch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/util.h"

static size_t gem_line_bytes(size_t id_len, size_t body_len) {
  /* {"request":BODY,"metadata":{"key":"ID"}}, */
  return 11 + body_len + 21 + id_len + 4;
}

static int gem_submit(rt_bhttp *h, const char *model, const char *label, char *const *ids, char *const *bodies,
                      const size_t *lens, size_t n, char *id, size_t idcap, rt_err *err) {
  char *lab = json_dumps(json_string(label), JSON_ENCODE_ANY | JSON_COMPACT);
  size_t total = 128 + strlen(lab);
  for (size_t k = 0; k < n; k++) total += gem_line_bytes(strlen(ids[k]), lens[k]);
  char *data = rt_xmalloc(total), *p = data;
  p += sprintf(p, "{\"batch\":{\"displayName\":%s,\"inputConfig\":{\"requests\":{\"requests\":[", lab);
  free(lab);
  for (size_t k = 0; k < n; k++) {
    p += sprintf(p, "%s{\"request\":", k ? "," : "");
    memcpy(p, bodies[k], lens[k]);
    p += lens[k];
    p += sprintf(p, ",\"metadata\":{\"key\":\"%s\"}}", ids[k]);
  }
  p += sprintf(p, "]}}}}");
  char url[1024];
  char *m = curl_easy_escape(h->e, model, 0);
  snprintf(url, sizeof url, "%s/v1beta/models/%s:batchGenerateContent", h->base, m ? m : model);
  curl_free(m);
  json_t *op = rt_bhttp_json(h, "POST", url, data, (size_t)(p - data), NULL, err);
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

static int gem_collect(rt_bhttp *h, const char *id, const rt_batch_state *st, rt_batch_line_fn fn, void *ud,
                       rt_err *err) {
  (void)h, (void)err;
  json_t *resp = json_object_get(st->op, "response");
  json_t *arr = json_object_get(json_object_get(resp, "inlinedResponses"), "inlinedResponses");
  if (!arr) {
    /* an output file instead of inline responses: not produced for inline input */
    if (json_object_get(resp, "responsesFile"))
      rt_warn("batch %s answered in a responses file; ragtide submits inline requests and reads inline responses",
              id);
    return RT_OK;
  }
  size_t i;
  json_t *it;
  json_array_foreach(arr, i, it) {
    const char *key = json_string_value(json_object_get(json_object_get(it, "metadata"), "key"));
    json_t *r = json_object_get(it, "response");
    if (json_is_object(r)) {
      char *b = json_dumps(r, JSON_COMPACT);
      fn(ud, key, (long)i, b, strlen(b), NULL);
      free(b);
    } else {
      json_t *e = json_object_get(it, "error");
      char why[400];
      snprintf(why, sizeof why, "batch line error %lld: %s", (long long)json_integer_value(json_object_get(e, "code")),
               json_string_value(json_object_get(e, "message")) ? json_string_value(json_object_get(e, "message"))
                                                                 : "no message");
      fn(ud, key, (long)i, NULL, 0, why);
    }
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
  .max_bytes = 20u * 1000u * 1000u - 4096u, /* 20 MB inline, less the envelope */
  .line_bytes = gem_line_bytes,
  .submit = gem_submit,
  .get = gem_get,
  .collect = gem_collect,
  .cancel = gem_cancel,
  .find = gem_find,
};
