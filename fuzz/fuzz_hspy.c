/* libFuzzer harness: HyperSpy .hspy files (HDF5, lib/io/hspy.c), through
 * the public entry points: the signal, its conversion to a cube, and
 * eelsvae_cube_load(). The input is the file; no HDF5 object may be left
 * open after it. Built only with HDF5. libhdf5 is not instrumented, so the
 * fuzzer's guidance stops at our calls into it; crashes inside libhdf5 are
 * kept apart by fuzz/run.sh (see fuzz/README.md). */
#include "fuzz_util.h"

#include <hdf5.h>

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_init_library();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_path("input.hspy");
    fuzz_write(path, data, size);
    fuzz_load_everything(path);
    /* every file, group, dataset, attribute and type the reader opened is closed again */
    FUZZ_CHECK(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL) == 0);
    return 0;
}
