/* tyr/tyr.h - everything: the run time, the typed layer, and all ops. */
#ifndef TYR_TYR_H
#define TYR_TYR_H
#include "tyr/tensor.h"
#include "tyr/autograd.h"
#include "tyr/typed.h"
#include "tyr/ops_create.h"
#include "tyr/ops_elementwise.h"
#include "tyr/ops_reduce.h"
#include "tyr/ops_layout.h"
#include "tyr/ops_linalg.h"
#include "tyr/ops_index.h"
#include "tyr/ops_nn.h"
#include "tyr/params.h"
#include "tyr/nn.h"
#include "tyr/optim.h"
#include "tyr/safetensors.h"
#include "tyr/checkpoint.h"
#include "tyr/data.h"
#include "tyr/flags.h"
#include "tyr/plot.h"
#include "tyr/progress.h"
#include "tyr/cuda.h"
#endif
