/* tags.h — every MPI message tag ragtide's point-to-point protocols use, in
 * one place: two protocols that shared a tag on one communicator would
 * steal each other's messages, and nothing else would notice. New
 * point-to-point code takes a tag here. (Collectives need no tags.)
 * No MPI is included: tags are plain integers. */
#ifndef RT_BASE_TAGS_H
#define RT_BASE_TAGS_H

enum rt_mpi_tag {
  /* on the job's communicator */
  RT_TAG_GATHER_STREAM = 77, /* pipeline/collective.c: rt_gather_stream, a rank's bytes to rank 0 */
  RT_TAG_MERGE_PULL = 91,    /* pipeline/count.c: rank 0 asks a rank for its next chunk of counts */
  RT_TAG_MERGE_CHUNK = 92,   /* pipeline/count.c: ... and the chunk */
  /* on MPI_COMM_WORLD, polled with MPI_Iprobe from loops that run outside
   * any collective: nothing may receive MPI_ANY_TAG there */
  RT_TAG_LLM_SHARE = 0x52544c, /* llm/ratelimit.c: a rank starts/stops calling (rate shares) */
  RT_TAG_STOP = 0x525453,      /* pipeline/stop.c: a stop signal reached this rank */
};

#endif
