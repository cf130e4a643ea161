// Package logreg trains and evaluates L2-regularised logistic regression on
// standardised features, the model family stored in
// schemas.ModelVersion (backend "cpu-go-logreg").
//
// # Model
//
// Every input column j is standardised with the training mean and the
// population standard deviation (divisor n, as scikit-learn's
// StandardScaler does):
//
//	z_j = (x_j - Mean[j]) / Std[j]        (Std[j] = 1 for a constant column)
//
// and the score is
//
//	p(x) = sigmoid(Bias + sum_j Weights[j] * z_j),   sigmoid(t) = 1/(1+e^-t).
//
// # Objective
//
// Train minimises, over w = Weights and b = Bias,
//
//	J(w, b) = sum_i [ -y_i ln p_i - (1-y_i) ln(1-p_i) ]  +  (L2/2) * ||w||²
//
// i.e. the summed (not averaged) log loss plus an L2 penalty on the weights
// only; the intercept is not penalised. This is exactly the objective of
// scikit-learn's LogisticRegression(penalty="l2", C=1/L2,
// fit_intercept=True) fitted on StandardScaler output (scikit-learn writes
// it as C * sum_i logloss_i + ½||w||², which has the same minimiser), so the
// default L2 = 1 corresponds to C = 1. Because the loss is summed, the
// penalty's relative weight shrinks as the training set grows.
//
// # Optimiser
//
// J is strictly convex for L2 > 0 and is minimised by damped Newton's method
// (iteratively reweighted least squares): each iteration forms the gradient
// and the (d+1)×(d+1) Hessian, solves for the Newton step with a Cholesky
// factorisation and backtracks on J (Armijo) when the full step does not
// decrease it enough. With the 15–30 features this project uses the Hessian
// is tiny and Newton converges in about ten passes over the data.
//
// The standardised matrix is not stored: each pass centres the rows a chunk
// at a time and accumulates the gradient and Hessian with respect to the
// centred features, rescaled by the standard deviations afterwards, so Train
// needs no memory proportional to the data beyond X itself.
//
// Each pass over the rows is split into up to 64 contiguous partitions
// (chosen from the row count alone) evaluated by Config.Workers goroutines;
// the partial sums are combined in partition order, so the trained model is
// bit-for-bit the same whatever the number of workers.
package logreg
