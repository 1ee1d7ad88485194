/* Thread safety of distinct handles: two models trained at the same time in
 * two threads end with exactly the weights (and model files) they get when
 * trained one after the other, and each thread keeps its own error message.
 *
 * Each training runs its own OpenMP regions (eelsvae_threads() workers per
 * region), so with two callers the OpenMP runtime serves two teams at once.
 * The models are tiny so that the test also runs in a few minutes under
 * helgrind (see tools/helgrind-threads.sh). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "nn/model_private.h" /* the parameter block, to compare bits */

/* One training: everything a thread needs, and what it produced. Nothing
 * here may call cmocka's assertions (they are not thread-safe), so the
 * job records its status and message instead. */
typedef struct job {
    const eelsvae_cube *cube;
    uint64_t model_seed, train_seed;
    size_t epochs;
    char path[1024];       /* where the trained model is saved */
    eelsvae_status status;
    char message[512];
    float *params;         /* a copy of the trained parameters */
    size_t n_params;
    pthread_barrier_t *start; /* both threads start together (NULL: no wait) */
} job;

static void job_init(job *j, const eelsvae_cube *cube, uint64_t model_seed, uint64_t train_seed, const char *name)
{
    memset(j, 0, sizeof *j);
    j->cube = cube;
    j->model_seed = model_seed;
    j->train_seed = train_seed;
    j->epochs = 2;
    snprintf(j->path, sizeof j->path, "%s", tu_path(name));
}

static eelsvae_status train_and_save(job *j)
{
    eelsvae_model_options o;
    eelsvae_status st = tu_tiny_model_options(&o); /* no assertions: threads call this */
    if (st != EELSVAE_OK) return st;
    eelsvae_model *m = NULL;
    st = eelsvae_model_create(&o, j->model_seed, &m);
    if (st != EELSVAE_OK) return st;
    eelsvae_train_options t;
    st = eelsvae_train_options_init(&t, EELSVAE_PRESET_FAST);
    t.epochs = j->epochs;
    t.batch = 4;
    t.tile_stride = 4; /* 9 tiles of 8 × 8 in 16 × 16: one validation tile, two batches */
    t.validation_fraction = 0.1;
    t.early_stop_patience = 0;
    t.seed = j->train_seed;
    const eelsvae_cube *cubes[1] = {j->cube};
    if (st == EELSVAE_OK) st = eelsvae_model_train(m, cubes, NULL, 1, &t);
    if (st == EELSVAE_OK) st = eelsvae_model_save(m, j->path, 1);
    if (st == EELSVAE_OK) {
        j->n_params = eelsvae_model_parameter_count(m);
        j->params = malloc(j->n_params * sizeof *j->params);
        if (j->params) memcpy(j->params, evae_cvae_params(m->net), j->n_params * sizeof *j->params);
        else st = EELSVAE_ERR_NOMEM;
    }
    eelsvae_model_free(m);
    return st;
}

static void *run_job(void *arg)
{
    job *j = arg;
    if (j->start) pthread_barrier_wait(j->start);
    j->status = train_and_save(j);
    snprintf(j->message, sizeof j->message, "%s", j->status == EELSVAE_OK ? "" : eelsvae_last_error());
    return NULL;
}

static void assert_job_ok(const job *j)
{
    if (j->status != EELSVAE_OK)
        fail_msg("training for %s returned %s: %s", j->path, eelsvae_strerror(j->status), j->message);
    assert_non_null(j->params);
}

static unsigned char *slurp(const char *path, size_t *size)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) fail_msg("cannot open %s", path);
    assert_int_equal(fseek(fp, 0, SEEK_END), 0);
    long n = ftell(fp);
    assert_true(n > 0);
    rewind(fp);
    unsigned char *buf = malloc((size_t)n);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, fp), (size_t)n);
    fclose(fp);
    *size = (size_t)n;
    return buf;
}

static void assert_same_model(const job *a, const job *b)
{
    assert_int_equal(a->n_params, b->n_params);
    if (memcmp(a->params, b->params, a->n_params * sizeof *a->params) != 0) {
        size_t i = 0;
        while (a->params[i] == b->params[i]) i++;
        fail_msg("%s and %s differ first at parameter %zu: %.9g against %.9g", a->path, b->path, i,
                 (double)a->params[i], (double)b->params[i]);
    }
    size_t na = 0, nb = 0;
    unsigned char *fa = slurp(a->path, &na), *fb = slurp(b->path, &nb);
    assert_int_equal(na, nb);
    assert_memory_equal(fa, fb, na);
    free(fa);
    free(fb);
}

static void job_free(job *j)
{
    free(j->params);
    j->params = NULL;
}

/* Two different trainings (other seeds, other data), first one after the
 * other, then both at once: each concurrent result equals its sequential twin. */
static void test_concurrent_training_is_sequential_training(void **state)
{
    (void)state;
    eelsvae_cube *c1 = tu_tiny_train_cube(16, 11), *c2 = tu_tiny_train_cube(16, 12);
    job seq[2], par[2];
    job_init(&seq[0], c1, 5, 7, "seq_a.evae");
    job_init(&seq[1], c2, 6, 9, "seq_b.evae");
    job_init(&par[0], c1, 5, 7, "par_a.evae");
    job_init(&par[1], c2, 6, 9, "par_b.evae");

    run_job(&seq[0]);
    run_job(&seq[1]);
    assert_job_ok(&seq[0]);
    assert_job_ok(&seq[1]);
    /* The two trainings really differ, so that cross-talk would show. */
    assert_true(memcmp(seq[0].params, seq[1].params, seq[0].n_params * sizeof(float)) != 0);

    pthread_barrier_t start;
    assert_int_equal(pthread_barrier_init(&start, NULL, 2), 0);
    par[0].start = par[1].start = &start;
    pthread_t th[2];
    for (int i = 0; i < 2; i++) assert_int_equal(pthread_create(&th[i], NULL, run_job, &par[i]), 0);
    for (int i = 0; i < 2; i++) assert_int_equal(pthread_join(th[i], NULL), 0);
    pthread_barrier_destroy(&start);
    assert_job_ok(&par[0]);
    assert_job_ok(&par[1]);
    assert_same_model(&seq[0], &par[0]);
    assert_same_model(&seq[1], &par[1]);

    for (int i = 0; i < 2; i++) {
        job_free(&seq[i]);
        job_free(&par[i]);
    }
    eelsvae_cube_free(c1);
    eelsvae_cube_free(c2);
}

/* A failure in one thread does not overwrite another thread's message. */
typedef struct fail_job {
    pthread_barrier_t *both_failed;
    size_t rows;
    char message[512];
} fail_job;

static void *fail_in_thread(void *arg)
{
    fail_job *f = arg;
    eelsvae_cube *c = NULL;
    eelsvae_cube_create(f->rows, 0, 3, &c); /* a zero dimension: fails, naming the rows */
    pthread_barrier_wait(f->both_failed);   /* the other thread has failed too by now */
    snprintf(f->message, sizeof f->message, "%s", eelsvae_last_error());
    return NULL;
}

static void test_error_messages_are_per_thread(void **state)
{
    (void)state;
    eelsvae_cube *c = NULL;
    assert_status(eelsvae_cube_create(0, 1, 1, &c), EELSVAE_ERR_INVALID_ARGUMENT);
    char mine[512];
    snprintf(mine, sizeof mine, "%s", eelsvae_last_error());
    pthread_barrier_t barrier;
    assert_int_equal(pthread_barrier_init(&barrier, NULL, 2), 0);
    fail_job f[2] = {{&barrier, 111, ""}, {&barrier, 222, ""}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++) assert_int_equal(pthread_create(&th[i], NULL, fail_in_thread, &f[i]), 0);
    for (int i = 0; i < 2; i++) assert_int_equal(pthread_join(th[i], NULL), 0);
    pthread_barrier_destroy(&barrier);
    assert_non_null(strstr(f[0].message, "111 × 0 × 3"));
    assert_non_null(strstr(f[1].message, "222 × 0 × 3"));
    assert_string_equal(eelsvae_last_error(), mine);
    assert_non_null(strstr(mine, "0 × 1 × 1"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_concurrent_training_is_sequential_training),
        cmocka_unit_test(test_error_messages_are_per_thread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
