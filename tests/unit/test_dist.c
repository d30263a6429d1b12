/* Process groups without a launcher: the world of one process, the
 * launchers' environment variables and their errors, the TCP rendezvous
 * that carries NCCL's unique id under torchrun (two processes, forked). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dist/internal.h"
#include "testutil.h"
#include "tyr/ops_create.h"

static tyr_tensor *rand_param(int r, int c, uint64_t seed) {
  tyr_manual_seed(seed);
  return tyr_randn_at(TYR_SITE, TYR_F32, TYR_DEVICE_CPU, 2, (int64_t[]){r, c}, 0.0, 1.0);
}

/* A group of one process needs no launcher; its collectives are copies. */
static void test_dist_world_one(void **state) {
  (void)state;
  tyr_dist_config c;
  memset(&c, 0, sizeof c);
  c.world_size = 1;
  tyr_dist *pg = tyr_dist_init(&c);
  assert_non_null(pg);
  assert_int_equal(tyr_dist_rank(pg), 0);
  assert_int_equal(tyr_dist_world_size(pg), 1);
  assert_string_equal(tyr_dist_backend_name(pg, TYR_DEVICE_CPU), "local");
  TYR_SCOPE;
  tyr_tensor *in = rand_param(2, 3, 4);
  tyr_tensor *out = tyr_empty_at(TYR_SITE, TYR_F32, TYR_DEVICE_CPU, 1, (int64_t[]){6});
  assert_int_equal(tyr_dist_all_gather(pg, out, in), 0);
  for (int k = 0; k < 6; k++)
    assert_true(((float *)tyr_data_ptr(out))[k] == ((float *)tyr_data_ptr(in))[k]);
  assert_int_equal(tyr_dist_all_reduce(pg, in, TYR_DIST_AVG), 0);
  assert_true(tyr_dist_reduce_scalar(pg, 2.5, TYR_DIST_SUM) == 2.5);
  assert_int_equal(tyr_dist_barrier(pg), 0);
  tyr_tensor_free(in);
  tyr_tensor_free(out);
  tyr_dist_free(pg);
}

/* The launcher's variables and their errors. */
static void test_dist_env(void **state) {
  (void)state;
  tyr_test_record_errors();
  const char *vars[] = {"OMPI_COMM_WORLD_RANK",
                        "OMPI_COMM_WORLD_SIZE",
                        "OMPI_COMM_WORLD_LOCAL_RANK",
                        "SLURM_PROCID",
                        "SLURM_STEP_NUM_TASKS",
                        "SLURM_LOCALID",
                        "RANK",
                        "WORLD_SIZE",
                        "LOCAL_RANK",
                        "MASTER_ADDR",
                        "MASTER_PORT",
                        "TYR_DIST_BACKEND",
                        "TYR_DIST_TIMEOUT",
                        "TYR_DIST_PORT"};
  for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) unsetenv(vars[i]);
  tyr_dist_config c;
  assert_int_equal(tyr_dist_config_from_env(&c), 0);
  assert_int_equal(c.launcher, TYR_LAUNCH_NONE);
  assert_int_equal(c.world_size, 1);
  setenv("RANK", "1", 1);
  setenv("WORLD_SIZE", "4", 1);
  setenv("LOCAL_RANK", "1", 1);
  setenv("MASTER_ADDR", "10.0.0.1", 1);
  setenv("MASTER_PORT", "1234", 1);
  assert_int_equal(tyr_dist_config_from_env(&c), 0);
  assert_int_equal(c.launcher, TYR_LAUNCH_TORCHRUN);
  assert_int_equal(c.rank, 1);
  assert_int_equal(c.world_size, 4);
  assert_int_equal(c.master_port, 1235); /* torchrun's store holds 1234 */
  assert_string_equal(c.master_addr, "10.0.0.1");
  setenv("RANK", "4", 1);
  EXPECT_TYR_ERROR(tyr_dist_config_from_env(&c), "RANK=4 is not below WORLD_SIZE=4");
  setenv("RANK", "x", 1);
  EXPECT_TYR_ERROR(tyr_dist_config_from_env(&c), "RANK='x'");
  setenv("RANK", "0", 1);
  unsetenv("MASTER_ADDR");
  EXPECT_TYR_ERROR(tyr_dist_config_from_env(&c), "MASTER_ADDR is not set");
  setenv("OMPI_COMM_WORLD_RANK", "2", 1);
  setenv("OMPI_COMM_WORLD_SIZE", "3", 1);
  assert_int_equal(tyr_dist_config_from_env(&c), 0);
  assert_int_equal(c.launcher, TYR_LAUNCH_MPIRUN);
  assert_int_equal(c.rank, 2);
  setenv("TYR_DIST_BACKEND", "gloo", 1);
  EXPECT_TYR_ERROR(tyr_dist_config_from_env(&c), "TYR_DIST_BACKEND='gloo'");
  for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) unsetenv(vars[i]);
#ifndef TYR_HAVE_NCCL
  memset(&c, 0, sizeof c);
  c.world_size = 1;
  c.backend = TYR_DIST_NCCL;
  EXPECT_TYR_ERROR(tyr_dist_init(&c), "no NCCL");
#endif
}

/* Rank 0 (this process) sends 128 bytes to ranks 1 and 2 (forked). */
static void test_dist_tcp_rendezvous(void **state) {
  (void)state;
  tyr_dist_config c;
  memset(&c, 0, sizeof c);
  c.world_size = 3;
  strcpy(c.master_addr, "127.0.0.1");
  c.master_port = 20000 + (int)(getpid() % 20000);
  unsigned char id[128];
  for (int i = 0; i < 128; i++) id[i] = (unsigned char)(i * 7 + 1);
  pid_t kids[2];
  for (int k = 0; k < 2; k++) {
    kids[k] = fork();
    if (kids[k] == 0) {
      tyr_dist_config cc = c;
      cc.rank = k + 1;
      unsigned char got[128] = {0};
      if (tyr__dist_tcp_bcast(&cc, TYR_SITE, "test", got, sizeof got, 20)) _exit(2);
      _exit(memcmp(got, id, sizeof id) ? 3 : 0);
    }
  }
  assert_int_equal(tyr__dist_tcp_bcast(&c, TYR_SITE, "test", id, sizeof id, 20), 0);
  for (int k = 0; k < 2; k++) {
    int st = -1;
    waitpid(kids[k], &st, 0);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
  }
  /* nobody listening: a rank gives up after the timeout, naming the address */
  tyr_test_record_errors();
  c.rank = 1;
  c.master_port = 1; /* privileged, nobody listens */
  unsigned char got[8];
  EXPECT_TYR_ERROR(tyr__dist_tcp_bcast(&c, TYR_SITE, "test", got, sizeof got, 0.3),
                   "could not connect to rank 0 at MASTER_ADDR=127.0.0.1");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TYR_TEST(test_dist_world_one),
      TYR_TEST(test_dist_env),
      TYR_TEST(test_dist_tcp_rendezvous),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
