/* metrics.c — names and storage of the stage counters. */
#include "base/metrics.h"
#include "base/util.h"

#include <string.h>

uint64_t rt_metrics[RT_M_COUNT];

static const char *const STAGES[] = {
#define S(stage, name, combine) #stage,
    RT_METRICS(S)
#undef S
};
static const char *const NAMES[] = {
#define N(stage, name, combine) #name,
    RT_METRICS(N)
#undef N
};
#define RT_SUM 0
#define RT_MAX 1
static const unsigned char COMBINE[] = {
#define C(stage, name, combine) RT_##combine,
    RT_METRICS(C)
#undef C
};

const char *rt_metric_stage(rt_metric m) { return STAGES[m]; }
const char *rt_metric_name(rt_metric m) { return NAMES[m]; }
int rt_metric_is_max(rt_metric m) { return COMBINE[m] == RT_MAX; }
void rt_metrics_reset(void) { memset(rt_metrics, 0, sizeof rt_metrics); }

double rt_stage_begin(void) { return rt_now(); }
void rt_stage_end(rt_metric us_metric, double t0) {
  rt_metric_add(us_metric, (uint64_t)((rt_now() - t0) * 1e6));
}
