/**
 * @file eelsvae.h
 * @brief libeelsvae umbrella header: includes every public header.
 *
 * libeelsvae finds spectral anomalies in EELS spectrum images (datacubes of
 * y × x × energy-loss) with a 3-D convolutional variational autoencoder and
 * a PCA baseline. The conventions every function follows are in base.h.
 */
#ifndef EELSVAE_H
#define EELSVAE_H

#include <eelsvae/base.h>
#include <eelsvae/cube.h>
#include <eelsvae/pca.h>
#include <eelsvae/score.h>
#include <eelsvae/edges.h>
#include <eelsvae/model.h>
#include <eelsvae/io.h>

#endif /* EELSVAE_H */
