/* libFuzzer harness: Gatan DigitalMicrograph .dm3/.dm4 files (lib/io/dm.c),
 * through the public entry points only: eelsvae_file_signals(), every
 * signal by index, each converted to a cube, and eelsvae_cube_load().
 * The input is the file; the format is recognised by its content, so the
 * seeds (fuzz/corpus/dm, written by fuzz/make_dm_seeds.py) keep the
 * fuzzer in the DM reader. */
#include "fuzz_util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_init_library();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_path("input.dm4");
    fuzz_write(path, data, size);
    fuzz_load_everything(path);
    return 0;
}
