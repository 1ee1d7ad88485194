/* Atomic file writes, bounded whole-file reads, CRC-32. */
#include "core.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char *dup_string(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = evae_malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* The mode a plain fopen() would give the file: an existing file keeps its
 * own; a new one gets 0666 less the umask. The umask is read from
 * /proc/self/status because umask() can only be read by changing it, which
 * would race with other threads; 0644 where /proc says nothing. */
static mode_t output_mode(const char *path)
{
    struct stat st;
    if (stat(path, &st) == 0) return st.st_mode & 07777;
    mode_t mask = 022;
    FILE *status = fopen("/proc/self/status", "r");
    if (status) {
        char line[128];
        unsigned value = 0;
        while (fgets(line, sizeof line, status))
            if (sscanf(line, "Umask: %o", &value) == 1) {
                mask = (mode_t)value;
                break;
            }
        fclose(status);
    }
    return 0666 & ~mask;
}

eelsvae_status evae_atomic_open(evae_atomic_file *f, const char *path)
{
    memset(f, 0, sizeof *f);
    if (!path || !*path) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "output path is empty");
    size_t n = strlen(path) + 32;
    f->path = dup_string(path);
    f->tmp_path = evae_malloc(n);
    if (!f->path || !f->tmp_path) {
        evae_atomic_abort(f);
        return evae_fail(EELSVAE_ERR_NOMEM, "%s: cannot allocate a file name", path);
    }
    /* mkstemp gives a unique name in the same directory, so rename is atomic. */
    snprintf(f->tmp_path, n, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(f->tmp_path);
    if (fd < 0) {
        int err = errno;
        evae_atomic_abort(f);
        return evae_fail(EELSVAE_ERR_IO, "%s: cannot create a temporary file beside it: %s", path, strerror(err));
    }
    /* mkstemp makes it 0600; the renamed file should read like any other. */
    (void)fchmod(fd, output_mode(path));
    f->fp = fdopen(fd, "wb");
    if (!f->fp) {
        int err = errno;
        close(fd);
        evae_atomic_abort(f);
        return evae_fail(EELSVAE_ERR_IO, "%s: %s", path, strerror(err));
    }
    return EELSVAE_OK;
}

eelsvae_status evae_atomic_write(evae_atomic_file *f, const void *data, size_t bytes)
{
    if (bytes && fwrite(data, 1, bytes, f->fp) != bytes)
        return evae_fail(EELSVAE_ERR_IO, "%s: write failed: %s", f->path, strerror(errno));
    return EELSVAE_OK;
}

eelsvae_status evae_atomic_commit(evae_atomic_file *f)
{
    int failed = fflush(f->fp) != 0 || fsync(fileno(f->fp)) != 0;
    int err = errno;
    failed |= fclose(f->fp) != 0;
    f->fp = NULL;
    if (failed || rename(f->tmp_path, f->path) != 0) {
        if (!failed) err = errno;
        eelsvae_status st = evae_fail(EELSVAE_ERR_IO, "%s: cannot finish writing: %s (old file kept)", f->path,
                                      strerror(err));
        evae_atomic_abort(f);
        return st;
    }
    evae_free(f->path);
    evae_free(f->tmp_path);
    memset(f, 0, sizeof *f);
    return EELSVAE_OK;
}

void evae_atomic_abort(evae_atomic_file *f)
{
    if (f->fp) fclose(f->fp);
    if (f->tmp_path) remove(f->tmp_path);
    evae_free(f->path);
    evae_free(f->tmp_path);
    memset(f, 0, sizeof *f);
}

eelsvae_status evae_open_sized(const char *path, const char *what, FILE **fp, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f) return evae_fail(EELSVAE_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    off_t end = -1;
    if (fseeko(f, 0, SEEK_END) == 0) end = ftello(f);
    if (end < 0 || fseeko(f, 0, SEEK_SET) != 0) {
        int err = errno;
        fclose(f);
        return evae_fail(EELSVAE_ERR_IO, "%s: cannot find its length: %s", path, strerror(err));
    }
    if ((uint64_t)end > SIZE_MAX) {
        fclose(f);
        return evae_fail(EELSVAE_ERR_FORMAT, "%s: %lld bytes is too large for %s here", path, (long long)end, what);
    }
    *fp = f;
    *size = (size_t)end;
    return EELSVAE_OK;
}

eelsvae_status evae_read_file(const char *path, size_t max_bytes, uint8_t **data, size_t *size)
{
    FILE *fp = NULL;
    size_t bytes = 0;
    EVAE_TRY(evae_open_sized(path, "this kind of file", &fp, &bytes));
    if (bytes > max_bytes) {
        fclose(fp);
        return evae_fail(EELSVAE_ERR_FORMAT, "%s: size %zu bytes exceeds the %zu-byte limit for this kind of file",
                         path, bytes, max_bytes);
    }
    uint8_t *buf = evae_malloc(bytes);
    if (!buf) {
        fclose(fp);
        return evae_fail(EELSVAE_ERR_NOMEM, "%s: cannot allocate %zu bytes", path, bytes);
    }
    size_t got = fread(buf, 1, bytes, fp);
    fclose(fp);
    if (got != bytes) {
        evae_free(buf);
        return evae_fail(EELSVAE_ERR_IO, "%s: read %zu of %zu bytes", path, got, bytes);
    }
    *data = buf;
    *size = got;
    return EELSVAE_OK;
}

static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void build_crc_table(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}

uint32_t evae_crc32(uint32_t crc, const void *data, size_t bytes)
{
    pthread_once(&crc_once, build_crc_table);
    const uint8_t *p = data;
    crc = ~crc;
    for (size_t i = 0; i < bytes; i++) crc = crc_table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
    return ~crc;
}
