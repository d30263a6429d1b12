/* Shared test helpers: cmocka, an error handler that records instead of
 * exiting, and a check that every test leaves the live-tensor count where
 * it found it. */
#ifndef TYR_TESTUTIL_H
#define TYR_TESTUTIL_H
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "tyr/tensor.h"

/* Installs the recording handler: errors no longer exit; the failing call
 * returns NULL or a non-zero status and the message is kept. */
void tyr_test_record_errors(void);
/* Number of errors raised since the last reset, and the last message. */
int tyr_test_error_count(void);
const char *tyr_test_error_message(void);
void tyr_test_error_reset(void);

/* setup/teardown: remember and then compare the live-tensor count, and
 * fail the test on any unexpected error. */
int tyr_test_setup(void **state);
int tyr_test_teardown(void **state);
#define TYR_TEST(fn) cmocka_unit_test_setup_teardown(fn, tyr_test_setup, tyr_test_teardown)

/* Evaluates expr, which must raise exactly one error whose message contains
 * substr; the error count is reset afterwards. */
#define EXPECT_TYR_ERROR(expr, substr)                                                             \
  do {                                                                                             \
    tyr_test_error_reset();                                                                        \
    (void)(expr);                                                                                  \
    if (tyr_test_error_count() == 0) fail_msg("%s: expected an error", #expr);                     \
    if (!strstr(tyr_test_error_message(), (substr)))                                               \
      fail_msg("%s: error '%s' does not contain '%s'", #expr, tyr_test_error_message(), (substr)); \
    tyr_test_error_reset();                                                                        \
  } while (0)

/* Asserts |a-b| <= atol + rtol*|b|, with a message naming what differs. */
#define ASSERT_CLOSE(a, b, atol, rtol)                                                             \
  tyr_test_assert_close((a), (b), (atol), (rtol), #a, __FILE__, __LINE__)
void tyr_test_assert_close(double a, double b, double atol, double rtol, const char *what,
                           const char *file, int line);

/* Path of a test fixture: $TYR_TEST_DATA/name (static buffer). */
const char *tyr_test_data(const char *name);
/* A fresh temporary directory for this test process (created once). */
const char *tyr_test_tmpdir(void);

#endif
