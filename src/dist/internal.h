/* Process groups: what the backends (local, MPI, NCCL) share with the
 * front end in dist.c. */
#ifndef TYR_DIST_INTERNAL_H
#define TYR_DIST_INTERNAL_H
#include "tyr/dist.h"

typedef enum dist_kind {
  DK_ALL_REDUCE = 1,
  DK_BROADCAST,
  DK_REDUCE_SCATTER,
  DK_ALL_GATHER
} dist_kind;

typedef struct dist_impl dist_impl;

struct tyr_dist_work {
  tyr_dist *pg;
  const dist_impl *impl;
  tyr_site site;
  const char *op;
  dist_kind kind;
  tyr_dist_op rop;
  tyr_tensor *out; /* retained */
  const tyr_tensor *in;
  bool done;
  void *state; /* the backend's request */
};

struct dist_impl {
  const char *name;
  /* starts w (fields filled in by the front end); 0 or a raised status */
  int (*start)(tyr_dist_work *w, const tyr_tensor *in, tyr_tensor *out, int root);
  /* optional: runs w to completion (blocking), sets w->done */
  int (*run)(tyr_dist_work *w, const tyr_tensor *in, tyr_tensor *out, int root);
  /* 0 with *done set, or a raised status */
  int (*test)(tyr_dist_work *w, bool *done);
  /* waits (with the group's timeout where the backend can) */
  int (*wait)(tyr_dist_work *w);
  void (*work_free)(tyr_dist_work *w);
  /* all[r*n .. r*n+n) = rank r's mine[0..n) (blocking), for the checks */
  int (*gather_desc)(tyr_dist *pg, tyr_site s, const char *op, const int64_t *mine, int64_t *all,
                     int n);
  int (*barrier)(tyr_dist *pg, tyr_site s);
  void (*free)(tyr_dist *pg);
};

struct tyr_dist {
  tyr_dist_config cfg;
  double timeout_s;
  bool check;
  const dist_impl *cpu, *cuda; /* NULL: not available for that device */
  void *mpi;                   /* MPI state */
  void *nccl;                  /* NCCL state (made at first use) */
  int nccl_dev;                /* its device */
};

extern const dist_impl tyr__dist_local;
#ifdef TYR_HAVE_MPI
extern const dist_impl tyr__dist_mpi;
int tyr__dist_mpi_open(tyr_dist *pg, tyr_site s);
/* Broadcasts n bytes from rank 0 over MPI (the NCCL unique id). */
int tyr__dist_mpi_bcast_bytes(tyr_dist *pg, tyr_site s, void *buf, int n);
#endif
#ifdef TYR_HAVE_NCCL
extern const dist_impl tyr__dist_nccl;
#endif
/* Rank 0 sends n bytes to every other rank over TCP at master_addr:
 * master_port (torchrun's rendezvous); the others receive them. */
int tyr__dist_tcp_bcast(const tyr_dist_config *cfg, tyr_site s, const char *op, void *buf, size_t n,
                        double timeout_s);

double tyr__dist_now(void);
/* Divides the n elements at p by d (AVG after a SUM). */
void tyr__dist_divide(void *p, tyr_dtype dt, int64_t n, double d);
#endif
