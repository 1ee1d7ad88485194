/* Core: status names, thread-local errors, checked sizes, allocation, RNG, atomic files, CRC-32. */
#include "testutil.h"

#include <sys/stat.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "core/core.h"

static void test_version(void **state)
{
    (void)state;
    assert_int_equal(eelsvae_version_number(), EELSVAE_VERSION_NUMBER);
    char expect[32];
    snprintf(expect, sizeof expect, "%d.%d.%d", EELSVAE_VERSION_MAJOR, EELSVAE_VERSION_MINOR, EELSVAE_VERSION_PATCH);
    assert_string_equal(eelsvae_version_string(), expect);
}

static void test_strerror_names_every_status(void **state)
{
    (void)state;
    assert_string_equal(eelsvae_strerror(EELSVAE_OK), "EELSVAE_OK");
    assert_string_equal(eelsvae_strerror(EELSVAE_ERR_FORMAT), "EELSVAE_ERR_FORMAT");
    for (int s = EELSVAE_OK; s <= EELSVAE_ERR_INTERNAL; s++)
        assert_string_not_equal(eelsvae_strerror((eelsvae_status)s), "EELSVAE_ERR_UNKNOWN");
    assert_string_equal(eelsvae_strerror((eelsvae_status)999), "EELSVAE_ERR_UNKNOWN");
}

static void *fail_in_thread(void *arg)
{
    (void)arg;
    evae_fail(EELSVAE_ERR_IO, "other thread");
    return NULL;
}

static void test_last_error_is_thread_local(void **state)
{
    (void)state;
    assert_int_equal(evae_fail(EELSVAE_ERR_RANGE, "value %d", 42), EELSVAE_ERR_RANGE);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, fail_in_thread, NULL), 0);
    pthread_join(t, NULL);
    assert_string_equal(eelsvae_last_error(), "value 42");
}

static void test_checked_products(void **state)
{
    (void)state;
    size_t out = 0;
    assert_ok(evae_mul3(192, 192, 1334, &out, "cube"));
    assert_int_equal(out, (size_t)192 * 192 * 1334);
    assert_status(evae_mul(SIZE_MAX / 2 + 1, 2, &out, "huge"), EELSVAE_ERR_OVERFLOW);
    assert_non_null(strstr(eelsvae_last_error(), "huge"));
    assert_status(evae_mul4(1u << 20, 1u << 20, 1u << 20, 1u << 20, &out, "4d"), EELSVAE_ERR_OVERFLOW);
    assert_ok(evae_mul(0, SIZE_MAX, &out, "zero"));
    assert_int_equal(out, 0);
}

static void test_allocation_aligned_and_injectable(void **state)
{
    (void)state;
    for (size_t n = 0; n < 200; n += 37) {
        void *p = evae_malloc(n);
        assert_non_null(p);
        assert_int_equal((uintptr_t)p % 64, 0);
        evae_free(p);
    }
    void *p = NULL;
    assert_status(evae_alloc_array(SIZE_MAX / 4, 8, &p, "too big"), EELSVAE_ERR_OVERFLOW);
    evae_fail_allocation_after(2);
    void *a = evae_malloc(8);
    void *b = evae_malloc(8);
    void *c = evae_malloc(8);
    assert_non_null(a);
    assert_null(b); /* the second call from now fails, once */
    assert_non_null(c);
    evae_free(a);
    evae_free(c);
    eelsvae_cube *cube = NULL;
    evae_fail_allocation_after(1);
    assert_status(eelsvae_cube_create(2, 2, 2, &cube), EELSVAE_ERR_NOMEM);
    assert_null(cube);
}

static void test_rng_deterministic_and_distributed(void **state)
{
    (void)state;
    evae_rng a, b, c;
    evae_rng_seed(&a, 7, 0);
    evae_rng_seed(&b, 7, 0);
    evae_rng_seed(&c, 7, 1);
    int differ = 0;
    for (int i = 0; i < 100; i++) {
        uint64_t va = evae_rng_u64(&a), vb = evae_rng_u64(&b), vc = evae_rng_u64(&c);
        assert_true(va == vb);
        differ += va != vc;
    }
    assert_true(differ > 95);

    /* Moments of each distribution against their definitions, n = 200000:
     * the standard error of a mean is σ/√n, so 5 SE bounds are safe. */
    const int n = 200000;
    double su = 0, sn = 0, sn2 = 0;
    for (int i = 0; i < n; i++) {
        double u = evae_rng_uniform(&a);
        assert_true(u >= 0.0 && u < 1.0);
        su += u;
        double z = evae_rng_normal(&a);
        sn += z;
        sn2 += z * z;
    }
    assert_close(su / n, 0.5, 5 * sqrt(1.0 / 12 / n), 0);
    assert_close(sn / n, 0.0, 5 / sqrt(n), 0);
    assert_close(sn2 / n, 1.0, 5 * sqrt(2.0 / n), 0);

    const double means[] = {0.5, 3.0, 9.9, 10.0, 57.0, 1000.0};
    for (size_t m = 0; m < sizeof means / sizeof *means; m++) {
        double lam = means[m], s = 0, s2 = 0;
        for (int i = 0; i < n; i++) {
            double k = evae_rng_poisson(&a, lam);
            assert_true(k >= 0 && k == floor(k));
            s += k;
            s2 += k * k;
        }
        double mean = s / n, var = s2 / n - mean * mean;
        assert_close(mean, lam, 5 * sqrt(lam / n), 0);
        /* Var of the sample variance ≈ (μ4 − σ⁴)/n with μ4 = λ(1+3λ). */
        assert_close(var, lam, 5 * sqrt((lam * (1 + 3 * lam) - lam * lam) / n), 0);
    }
    assert_true(evae_rng_poisson(&a, 0.0) == 0.0);
}

static void test_crc32_known_value(void **state)
{
    (void)state;
    /* The CRC-32 check value of the IEEE polynomial. */
    assert_int_equal(evae_crc32(0, "123456789", 9), 0xCBF43926u);
    uint32_t part = evae_crc32(0, "12345", 5);
    assert_int_equal(evae_crc32(part, "6789", 4), 0xCBF43926u);
}

static void test_atomic_file_keeps_old_on_abort(void **state)
{
    (void)state;
    const char *path = tu_path("atomic.txt");
    evae_atomic_file f;
    assert_ok(evae_atomic_open(&f, path));
    assert_ok(evae_atomic_write(&f, "old", 3));
    assert_ok(evae_atomic_commit(&f));

    assert_ok(evae_atomic_open(&f, path));
    assert_ok(evae_atomic_write(&f, "new contents", 12));
    evae_atomic_abort(&f);

    uint8_t *data = NULL;
    size_t size = 0;
    assert_ok(evae_read_file(path, 100, &data, &size));
    assert_int_equal(size, 3);
    assert_memory_equal(data, "old", 3);
    evae_free(data);
    assert_int_equal(tu_system("ls %s | grep -c tmp >/dev/null", tu_tmpdir()), 1); /* no temporary left */

    assert_status(evae_atomic_open(&f, tu_path("no/such/dir/x")), EELSVAE_ERR_IO);
    assert_status(evae_read_file(tu_path("missing"), 100, &data, &size), EELSVAE_ERR_IO);
    assert_status(evae_read_file(path, 2, &data, &size), EELSVAE_ERR_FORMAT);
}

/* A written file has the mode fopen() would give it (0666 less the umask),
 * not mkstemp's 0600, and a replaced file keeps its own mode. */
static void test_atomic_file_mode(void **state)
{
    (void)state;
    const char *path = tu_path("atomic-mode.txt");
    remove(path);
    mode_t old_mask = umask(027);
    evae_atomic_file f;
    assert_ok(evae_atomic_open(&f, path));
    assert_ok(evae_atomic_write(&f, "x", 1));
    assert_ok(evae_atomic_commit(&f));
    umask(old_mask);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0640);
    assert_int_equal(chmod(path, 0604), 0);
    assert_ok(evae_atomic_open(&f, path));
    assert_ok(evae_atomic_write(&f, "y", 1));
    assert_ok(evae_atomic_commit(&f));
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0604);
}

static void test_options_struct_size(void **state)
{
    (void)state;
    struct demo_options {
        size_t struct_size;
        int a, b;
    } dst = {0, 1, 2}, src = {0, 10, 20};
    assert_status(evae_read_options(&dst, sizeof dst, &src, "demo"), EELSVAE_ERR_INVALID_ARGUMENT);
    /* An older caller's struct that ends after `a` leaves `b` at its default. */
    src.struct_size = offsetof(struct demo_options, b);
    dst.b = 2;
    assert_ok(evae_read_options(&dst, sizeof dst, &src, "demo"));
    assert_int_equal(dst.a, 10);
    assert_int_equal(dst.b, 2);
    assert_int_equal(dst.struct_size, sizeof dst);
}

static void test_threads_setting(void **state)
{
    (void)state;
    assert_ok(eelsvae_set_threads(1));
    assert_int_equal(eelsvae_threads(), 1);
    assert_ok(eelsvae_set_threads(0));
    assert_true(eelsvae_threads() >= 1);
    assert_status(eelsvae_set_threads(-1), EELSVAE_ERR_INVALID_ARGUMENT);
}

static int log_calls;
static void count_log(void *user, eelsvae_log_level level, const char *message)
{
    (void)level;
    assert_ptr_equal(user, &log_calls);
    assert_string_equal(message, "hello 3");
    log_calls++;
}

static void test_log_callback(void **state)
{
    (void)state;
    evae_log(EELSVAE_LOG_INFO, "silent %d", 1); /* no callback: nothing happens */
    eelsvae_set_log_callback(count_log, &log_calls);
    evae_log(EELSVAE_LOG_INFO, "hello %d", 3);
    eelsvae_set_log_callback(NULL, NULL);
    evae_log(EELSVAE_LOG_INFO, "hello %d", 3);
    assert_int_equal(log_calls, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_strerror_names_every_status),
        cmocka_unit_test(test_last_error_is_thread_local),
        cmocka_unit_test(test_checked_products),
        cmocka_unit_test(test_allocation_aligned_and_injectable),
        cmocka_unit_test(test_rng_deterministic_and_distributed),
        cmocka_unit_test(test_crc32_known_value),
        cmocka_unit_test(test_atomic_file_keeps_old_on_abort),
        cmocka_unit_test(test_atomic_file_mode),
        cmocka_unit_test(test_options_struct_size),
        cmocka_unit_test(test_threads_setting),
        cmocka_unit_test(test_log_callback),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
