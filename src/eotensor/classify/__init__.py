"""Classic classifiers over rasters and deep features (OTB's TrainImagesClassifier and ImageClassifier on
scikit-learn): image statistics and normalisation, training samples under geometries, fitting and model files,
and the classification map as a lazy result. Needs the ``classify`` extra (scikit-learn, skops), imported only
when a classifier is made or loaded."""

from eotensor.classify.models import ClassifierModel, load_classifier, make_classifier
from eotensor.classify.predict import Classification
from eotensor.classify.statistics import BandStatistics, Normalisation, image_statistics
from eotensor.classify.training import SampleOptions, TrainingResult, train_classifier, write_confusion_csv

__all__ = ["BandStatistics", "Classification", "ClassifierModel", "Normalisation", "SampleOptions", "TrainingResult",
           "image_statistics", "load_classifier", "make_classifier", "train_classifier", "write_confusion_csv"]
