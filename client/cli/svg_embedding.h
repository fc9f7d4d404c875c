// Embedding map: a 2-D PCA projection of embeddings as an SVG scatter plot, one colour per
// label (matplotlib's tab10 for up to ten distinct labels, else Viridis over the sorted
// labels), with a legend.
//
// PCA: rows are centred; the two leading eigenvectors of the covariance C = X^T X / n are found
// by power iteration with deflation (300 iterations from a fixed start vector, deterministic);
// each point is plotted at (x . v1, x . v2). Every point is one <circle class="point">, every
// legend entry one <g class="legend-entry">.
#ifndef GRADZOO_CLIENT_CLI_SVG_EMBEDDING_H_
#define GRADZOO_CLIENT_CLI_SVG_EMBEDDING_H_

#include <string>
#include <vector>

namespace gradzoo::client::svg {

// The two leading principal axes of rows x [n, dim] (centred), as 2 * dim values.
std::vector<double> PrincipalAxes2(const std::vector<float>& x, int n, int dim);

// The SVG document. `labels` has n entries.
std::string EmbeddingMap(const std::vector<float>& x, int n, int dim,
                         const std::vector<std::string>& labels, const std::string& title);

}  // namespace gradzoo::client::svg

#endif  // GRADZOO_CLIENT_CLI_SVG_EMBEDDING_H_
