/* libFuzzer harness: Ripple .rpl headers with their .raw data
 * (lib/io/rpl.c), through the public entry points.
 *
 * One input makes both files: the bytes before the first separator line
 * "\n@@RAW@@\n" are the .rpl header, the bytes after it the .raw file.
 * Without a separator the whole input is the header and there is no .raw
 * file at all (the reader must report the missing file). */
#include "fuzz_util.h"

static const char separator[] = "\n@@RAW@@\n";

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_init_library();
    return 0;
}

static const uint8_t *find(const uint8_t *data, size_t size, const char *needle)
{
    size_t n = strlen(needle);
    for (size_t i = 0; i + n <= size; i++)
        if (memcmp(data + i, needle, n) == 0) return data + i;
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *rpl = fuzz_path("input.rpl"), *raw = fuzz_path("input.raw");
    const uint8_t *sep = find(data, size, separator);
    if (sep) {
        size_t header = (size_t)(sep - data), skip = header + strlen(separator);
        fuzz_write(rpl, data, header);
        fuzz_write(raw, data + skip, size - skip);
    } else {
        fuzz_write(rpl, data, size);
        unlink(raw);
    }
    fuzz_load_everything(rpl);
    return 0;
}
