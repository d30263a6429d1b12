/* Files never half-written: temporary files of killed writers removed by
 * the next save, a failed save leaving neither a temporary file nor a
 * changed target, JSON-lines logs flushed per line and cut back to a step. */
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"
#include "tyr/fileio.h"
#include "tyr/safetensors.h"
#include "tyr/tyr.h"

static int count_tmp(const char *dir, const char *base) {
  DIR *d = opendir(dir);
  assert_non_null(d);
  int n = 0;
  struct dirent *e;
  char pre[256];
  snprintf(pre, sizeof pre, "%s.tmp.", base);
  while ((e = readdir(d)))
    if (strncmp(e->d_name, pre, strlen(pre)) == 0) n++;
  closedir(d);
  return n;
}

static void touch(const char *path) {
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs("partial", f);
  fclose(f);
}

static pid_t dead_pid(void) {
  pid_t p = fork();
  if (p == 0) _exit(0);
  assert_true(p > 0);
  waitpid(p, NULL, 0);
  return p;
}

static void test_stale_temporaries_removed(void **state) {
  (void)state;
  char dir[512], path[600], stale[700], live[700];
  snprintf(dir, sizeof dir, "%s/stale", tyr_test_tmpdir());
  mkdir(dir, 0777);
  snprintf(path, sizeof path, "%s/ck.safetensors", dir);
  /* a killed save's leftover, and one of a process that still runs (ours'
     parent) */
  snprintf(stale, sizeof stale, "%s.tmp.%ld.0", path, (long)dead_pid());
  snprintf(live, sizeof live, "%s.tmp.%ld.0", path, (long)getppid());
  touch(stale);
  touch(live);
  assert_int_equal(count_tmp(dir, "ck.safetensors"), 2);
  TYR_SCOPE;
  tyr_tensor *t = tyr_ones_e(4);
  const char *names[] = {"t"};
  assert_int_equal(tyr_safetensors_save(path, 1, names, &t, 0, NULL, NULL), 0);
  struct stat st;
  assert_int_not_equal(stat(stale, &st), 0);
  assert_int_equal(stat(live, &st), 0);
  unlink(live);
  assert_int_equal(tyr_atomic_cleanup_stale(path), 0);
}

static void test_failed_save_leaves_nothing(void **state) {
  (void)state;
  tyr_test_record_errors();
  char dir[512], path[600];
  snprintf(dir, sizeof dir, "%s/full", tyr_test_tmpdir());
  mkdir(dir, 0777);
  snprintf(path, sizeof path, "%s/ck.safetensors", dir);
  assert_int_equal(tyr_file_write_atomic(path, "old", 3), 0);
  struct rlimit old, small = {.rlim_cur = 4096, .rlim_max = RLIM_INFINITY};
  getrlimit(RLIMIT_FSIZE, &old);
  small.rlim_max = old.rlim_max;
  signal(SIGXFSZ, SIG_IGN);
  assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
  {
    TYR_SCOPE;
    tyr_tensor *t = tyr_ones_e(100000); /* 400 kB: the write fails */
    const char *names[] = {"t"};
    EXPECT_TYR_ERROR(tyr_safetensors_save(path, 1, names, &t, 0, NULL, NULL), "ck.safetensors");
  }
  setrlimit(RLIMIT_FSIZE, &old);
  signal(SIGXFSZ, SIG_DFL);
  assert_int_equal(count_tmp(dir, "ck.safetensors"), 0);
  char buf[8] = {0};
  FILE *f = fopen(path, "r");
  assert_non_null(f);
  assert_int_equal(fread(buf, 1, sizeof buf, f), 3);
  fclose(f);
  assert_string_equal(buf, "old");
}

/* The same failure under the default error handler, which exits at the
 * raise, in the middle of the save: the temporary file is removed at exit
 * (a program's checkpoint on a full disk). */
static void test_failed_save_exiting_leaves_nothing(void **state) {
  (void)state;
  char dir[512], path[600];
  snprintf(dir, sizeof dir, "%s/full_exit", tyr_test_tmpdir());
  mkdir(dir, 0777);
  snprintf(path, sizeof path, "%s/ck.safetensors", dir);
  /* made here: the child runs no kernel (OpenMP's threads are not
     forked with it) */
  tyr_tensor *t = tyr_ones_e(100000); /* 400 kB: the write fails */
  fflush(NULL);
  pid_t p = fork();
  if (p == 0) {
    tyr_error_set_handler(NULL, NULL); /* the default: print and exit(1) */
    struct rlimit lim;
    getrlimit(RLIMIT_FSIZE, &lim);
    lim.rlim_cur = 4096;
    signal(SIGXFSZ, SIG_IGN);
    if (setrlimit(RLIMIT_FSIZE, &lim) != 0) _exit(3);
    const char *names[] = {"t"};
    tyr_safetensors_save(path, 1, names, &t, 0, NULL, NULL);
    _exit(4); /* not reached: the handler exits */
  }
  tyr_tensor_free(t);
  assert_true(p > 0);
  int status = 0;
  assert_int_equal(waitpid(p, &status, 0), p);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 1);
  assert_int_equal(count_tmp(dir, "ck.safetensors"), 0);
  struct stat st;
  assert_int_not_equal(stat(path, &st), 0);
}

static void test_atomic_check(void **state) {
  (void)state;
  char why[512], dir[512], p[1200];
  snprintf(dir, sizeof dir, "%s/check", tyr_test_tmpdir());
  mkdir(dir, 0777);
  snprintf(p, sizeof p, "%s/out.png", dir);
  assert_int_equal(tyr_atomic_check(p, why, sizeof why), 0);
  assert_int_equal(tyr_atomic_check("", why, sizeof why), -1);
  assert_non_null(strstr(why, "empty"));
  assert_int_equal(tyr_atomic_check(dir, why, sizeof why), -1); /* an existing directory */
  assert_non_null(strstr(why, "is a directory"));
  snprintf(p, sizeof p, "%s/", dir);
  assert_int_equal(tyr_atomic_check(p, why, sizeof why), -1);
  assert_non_null(strstr(why, "names a directory"));
  snprintf(p, sizeof p, "%s/missing/out.png", dir);
  assert_int_equal(tyr_atomic_check(p, why, sizeof why), -1);
  assert_non_null(strstr(why, "No such file"));
  char file[700];
  snprintf(file, sizeof file, "%s/plain", dir);
  touch(file);
  snprintf(p, sizeof p, "%s/out.png", file); /* under a regular file */
  assert_int_equal(tyr_atomic_check(p, why, sizeof why), -1);
  assert_non_null(strstr(why, "is not a directory"));
  char name[256];
  memset(name, 'x', 250);
  name[250] = 0; /* a valid name, too long for its temporary name */
  snprintf(p, sizeof p, "%s/%s", dir, name);
  assert_int_equal(tyr_atomic_check(p, why, sizeof why), -1);
  assert_non_null(strstr(why, "file name is too long"));
  if (geteuid() != 0) { /* root writes anywhere */
    snprintf(p, sizeof p, "%s/ro", dir);
    mkdir(p, 0555);
    snprintf(p, sizeof p, "%s/ro/out.png", dir);
    assert_int_equal(tyr_atomic_check(p, why, sizeof why), -1);
    assert_non_null(strstr(why, "not writable"));
  }
}

static void test_jsonl(void **state) {
  (void)state;
  char path[512];
  snprintf(path, sizeof path, "%s/metrics.jsonl", tyr_test_tmpdir());
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  for (int s = 1; s <= 5; s++) {
    assert_int_equal(tyr_jsonl_write(f, path, "{\"step\":%d,\"loss\":%g}", s, 1.0 / s), 0);
    if (s == 4) assert_int_equal(tyr_jsonl_write(f, path, "{\"step\":4,\"val_loss\":0.5}"), 0);
  }
  /* flushed: another reader sees every line before the file is closed */
  FILE *g = fopen(path, "r");
  char line[256];
  int lines = 0;
  while (fgets(line, sizeof line, g)) lines++;
  fclose(g);
  assert_int_equal(lines, 6);
  fputs("{\"step\":6,\"lo", f); /* a torn line, as a crash leaves it */
  fclose(f);

  assert_int_equal(tyr_jsonl_truncate(path, 3), 4); /* 4, 4 (val), 5 and the torn one */
  g = fopen(path, "r");
  lines = 0;
  int last = 0;
  while (fgets(line, sizeof line, g)) {
    lines++;
    assert_non_null(strchr(line, '\n'));
    assert_int_equal(sscanf(line, "{\"step\":%d", &last), 1);
  }
  fclose(g);
  assert_int_equal(lines, 3);
  assert_int_equal(last, 3);
  assert_int_equal(tyr_jsonl_truncate(path, 3), 0); /* nothing more to cut */
  char missing[600];
  snprintf(missing, sizeof missing, "%s/none.jsonl", tyr_test_tmpdir());
  assert_int_equal(tyr_jsonl_truncate(missing, 3), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TYR_TEST(test_stale_temporaries_removed),
      TYR_TEST(test_failed_save_leaves_nothing),
      TYR_TEST(test_failed_save_exiting_leaves_nothing),
      TYR_TEST(test_atomic_check),
      TYR_TEST(test_jsonl),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
